//! The console's static files, compiled into the wasm so that `spin up` needs no file mounts and
//! no download, and so that a deployed version can never serve a mixed set of files.

pub struct Asset {
    pub body: &'static [u8],
    pub content_type: &'static str,
    /// Strong validator: a hash of the exact bytes, quoted. Computed at compile time.
    pub etag: &'static str,
}

macro_rules! asset {
    ($file:literal, $content_type:expr) => {{
        const BODY: &[u8] = include_bytes!(concat!("../assets/", $file));
        const HEX: [u8; 18] = quoted_hex(fnv1a64(BODY));
        (
            $file,
            Asset {
                body: BODY,
                content_type: $content_type,
                etag: match core::str::from_utf8(&HEX) {
                    Ok(etag) => etag,
                    Err(_) => panic!("hex is ASCII"),
                },
            },
        )
    }};
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Files under `/assets/`. `index.html` is also served at `/`.
static ASSETS: &[(&str, Asset)] = &[
    asset!("index.html", HTML),
    asset!("console.css", CSS),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("session.js", JS),
    asset!("validate.js", JS),
    asset!("format.js", JS),
    asset!("verification.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
];

/// Maps a request path to the asset it names; `None` for anything else, including traversal
/// attempts, because only exact names of the table match.
pub fn resolve(path: &str) -> Option<&'static Asset> {
    let file = match path {
        "/" | "/index.html" => "index.html",
        _ => path.strip_prefix("/assets/")?,
    };
    ASSETS.iter().find(|(name, _)| *name == file).map(|(_, asset)| asset)
}

/// FNV-1a: not a cryptographic hash, but an ETag only needs to change when the bytes change,
/// and a `const fn` keeps it out of the request path.
const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

const fn quoted_hex(value: u64) -> [u8; 18] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = DIGITS[((value >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_index_html_serve_the_page() {
        let root = resolve("/").expect("root");
        let index = resolve("/index.html").expect("index.html");
        assert!(core::ptr::eq(root, index));
        assert_eq!(root.content_type, HTML);
        assert!(root.body.starts_with(b"<!doctype html>"));
    }

    #[test]
    fn assets_resolve_with_their_content_type() {
        assert_eq!(resolve("/assets/app.js").expect("app.js").content_type, JS);
        assert_eq!(resolve("/assets/console.css").expect("css").content_type, CSS);
        assert_eq!(resolve("/assets/favicon.svg").expect("svg").content_type, "image/svg+xml");
    }

    #[test]
    fn every_module_the_page_imports_is_in_the_table() {
        for (name, asset) in ASSETS {
            let text = core::str::from_utf8(asset.body).expect("utf-8");
            for import in text.split("from './").skip(1) {
                let target = &import[..import.find('\'').expect("closing quote")];
                assert!(
                    resolve(&format!("/assets/{target}")).is_some(),
                    "{name} imports {target}, which is not served"
                );
            }
        }
    }

    #[test]
    fn every_asset_the_page_links_is_in_the_table() {
        let page = core::str::from_utf8(resolve("/").expect("page").body).expect("utf-8");
        let links: Vec<&str> = page.split('"').filter(|part| part.starts_with("/assets/")).collect();
        assert!(links.len() >= 3, "the page links its script, style and icon");
        for link in links {
            assert!(resolve(link).is_some(), "index.html links {link}, which is not served");
        }
    }

    #[test]
    fn unknown_and_crafted_paths_resolve_to_nothing() {
        for path in [
            "",
            "/index.htm",
            "/assets/",
            "/assets",
            "/assets/../Cargo.toml",
            "/assets/nope.js",
            "/assets//app.js",
            "/app.js",
            "/v2/admin/dockerRegistrySecrets",
            "/ASSETS/app.js",
        ] {
            assert!(resolve(path).is_none(), "{path:?} resolved");
        }
    }

    #[test]
    fn etags_are_quoted_and_differ_between_files() {
        let app = resolve("/assets/app.js").expect("app.js").etag;
        let css = resolve("/assets/console.css").expect("css").etag;
        assert!(app.starts_with('"') && app.ends_with('"') && app.len() == 18);
        assert_ne!(app, css);
    }

    #[test]
    fn hash_changes_when_a_byte_changes() {
        assert_ne!(fnv1a64(b"abc"), fnv1a64(b"abd"));
        assert_eq!(&quoted_hex(0x0123_4567_89ab_cdef), b"\"0123456789abcdef\"");
    }
}
