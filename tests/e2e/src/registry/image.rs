//! A minimal OCI image written by hand (one tiny layer, a config, a manifest, `index.json`) and
//! pushed with skopeo, so a registry's repository check has something real to find.

use sha2::Digest as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PUSH_LIMIT: Duration = Duration::from_secs(60);

struct Blob {
    digest: String,
    size: usize,
}

fn write_blob(layout: &Path, bytes: &[u8]) -> Blob {
    let hex = format!("{:x}", sha2::Sha256::digest(bytes));
    std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).expect("write blob");
    Blob { digest: format!("sha256:{hex}"), size: bytes.len() }
}

/// A ustar archive holding one small file.
fn tar_with_one_file(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    header[100..108].copy_from_slice(b"0000644\0");
    header[108..116].copy_from_slice(b"0000000\0");
    header[116..124].copy_from_slice(b"0000000\0");
    header[124..136].copy_from_slice(format!("{:011o}\0", content.len()).as_bytes());
    header[136..148].copy_from_slice(b"00000000000\0");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| b as u32).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Writes an OCI image layout with one image tagged `tag` into `layout`.
pub fn write_layout(layout: &Path, tag: &str) {
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("layout dirs");
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    let layer = write_blob(layout, &tar_with_one_file("hello.txt", b"hello from regsecrets' tests\n"));
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
    });
    let config = write_blob(layout, config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.digest, "size": layer.size}],
    });
    let manifest = write_blob(layout, manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest.digest, "size": manifest.size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).expect("index.json");
}

/// `skopeo copy` of the layout to `docker://<host>/<repository>:<tag>`, trusting `trust_dir`'s CA.
pub fn push(layout: &Path, tag: &str, destination: &str, creds: (&str, &str), trust_dir: &Path) {
    let mut child = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--quiet", "--dest-creds"])
        .arg(format!("{}:{}", creds.0, creds.1))
        .arg("--dest-cert-dir")
        .arg(trust_dir)
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{destination}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("skopeo runs");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("skopeo status") {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
            }
            assert!(status.success(), "skopeo copy to {destination} failed: {err}");
            return;
        }
        if started.elapsed() > PUSH_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("skopeo copy to {destination} took over {PUSH_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tar_header_checksum_is_valid() {
        let tar = super::tar_with_one_file("a.txt", b"abc");
        assert_eq!(tar.len(), 512 + 512 + 1024);
        let mut header = tar[..512].to_vec();
        let stored = u32::from_str_radix(std::str::from_utf8(&header[148..154]).unwrap(), 8).unwrap();
        header[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, header.iter().map(|&b| b as u32).sum::<u32>());
    }
}
