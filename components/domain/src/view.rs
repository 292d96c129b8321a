//! The tenant's state after one slot of its write log (a *view*): a header line, then one line per
//! secret, sorted by name.
//!
//! ```text
//! {"slot":12,"limit":80,"refused":[[11,{"exists":null}]],"from":1,"garbage":[9]}
//! {"name":"a-registry","registries":["ghcr.io"],...,"version":7,"record":7}
//! {"name":"b-registry",...}
//! ```
//!
//! The format is chosen so that reads cost what they use, not what the tenant holds: a get finds
//! its line by binary search on the name each line starts with and parses only that line; the
//! quota parses only the header (the number of secrets is the number of lines); a page parses only
//! its own lines. Writers splice one line in or out. A view is written once per slot and its bytes
//! are a function of the previous view and the slot's decided operation (see `log::op`), so every
//! writer of the same slot writes the same bytes.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Internal};
use crate::index::IndexEntry;

/// How many of the latest slots a view remembers the outcome of (for a writer that was paused
/// while others applied its slot, see `log`).
pub const OUTCOMES: u64 = 64;

/// The default quota limit, and what the operator may set at most.
pub const DEFAULT_LIMIT: u32 = 50;

/// Why an operation did not apply: each is one of the API's refusals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Refusal {
    Exists,
    Quota {
        limit: u32,
        used: u32,
    },
    NotFound,
    Precondition,
    ManagedUpdate,
    ManagedDelete,
    Forbidden,
    /// A re-seal or a verification outcome whose secret changed meanwhile: nothing to do.
    Stale,
}

impl Refusal {
    pub fn into_error(self) -> Error {
        match self {
            Refusal::Exists => Error::SecretNameExists,
            Refusal::Quota { limit, used } => Error::QuotaExceeded { limit, used },
            Refusal::NotFound | Refusal::Stale => Error::SecretNotFound,
            Refusal::Precondition => Error::PreconditionFailed,
            Refusal::ManagedUpdate => Error::UpdateManagedSecretNotAllowed,
            Refusal::ManagedDelete => Error::DeleteManagedSecretNotAllowed,
            Refusal::Forbidden => Error::Forbidden,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The slot whose application produced this view (0: the empty state before any write).
    pub slot: u64,
    /// The operator-set quota limit; absent: [`DEFAULT_LIMIT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The slots in `from..=slot` that did not apply, and why (`None`: taken over and voided).
    /// Every other slot in that range applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<(u64, Option<Refusal>)>,
    #[serde(default)]
    pub from: u64,
    /// The record holding the tenant's workload-identity trust (`crate::workload`), if one was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<u64>,
    /// Records that no entry references any more after this slot (replaced, deleted, refused or
    /// voided): whoever applies this slot or the next deletes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub garbage: Vec<u64>,
    /// Those of `garbage` whose entry was a minting kind: after deleting the record, whoever
    /// deletes it deletes its cached credential `P:mint:<record>` too (`mint::cache`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub minted: Vec<u64>,
}

/// What became of one slot, as far as its writer is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotOutcome {
    Applied,
    Refused(Refusal),
    /// Taken over while its writer was away: nothing of it was applied.
    Voided,
    /// Older than the view remembers.
    Forgotten,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    header: Header,
    bytes: Vec<u8>,
    /// Byte ranges of the entry lines (without the newline), in name order.
    lines: Vec<(usize, usize)>,
}

const NAME_PREFIX: &[u8] = b"{\"name\":\"";

fn corrupt() -> Error {
    Internal::CorruptRecord.into()
}

impl View {
    pub fn empty() -> View {
        View::build(Header::default(), Vec::new(), &[])
    }

    pub fn decode(bytes: Vec<u8>) -> Result<View, Error> {
        let header_end = bytes.iter().position(|b| *b == b'\n').unwrap_or(bytes.len());
        let header: Header = serde_json::from_slice(&bytes[..header_end]).map_err(|_| corrupt())?;
        let mut lines = Vec::new();
        let mut start = header_end + 1;
        while start < bytes.len() {
            let end = bytes[start..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |i| start + i);
            if !bytes[start..end].starts_with(NAME_PREFIX) {
                return Err(corrupt());
            }
            lines.push((start, end));
            start = end + 1;
        }
        Ok(View { header, bytes, lines })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn slot(&self) -> u64 {
        self.header.slot
    }

    pub fn limit(&self) -> u32 {
        self.header.limit.unwrap_or(DEFAULT_LIMIT)
    }

    pub fn used(&self) -> u32 {
        self.lines.len() as u32
    }

    /// The name line `i` starts with (names are `[a-z0-9.-]`, so never escaped in JSON).
    pub fn name_at(&self, i: usize) -> &str {
        let (start, end) = self.lines[i];
        let rest = &self.bytes[start + NAME_PREFIX.len()..end];
        let len = rest.iter().position(|b| *b == b'"').unwrap_or(rest.len());
        std::str::from_utf8(&rest[..len]).unwrap_or("")
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        let (mut low, mut high) = (0, self.lines.len());
        while low < high {
            let mid = (low + high) / 2;
            match self.name_at(mid).cmp(name) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(low)
    }

    pub fn entry_at(&self, i: usize) -> Result<IndexEntry, Error> {
        let (start, end) = self.lines[i];
        serde_json::from_slice(&self.bytes[start..end]).map_err(|_| corrupt())
    }

    pub fn find(&self, name: &str) -> Result<Option<IndexEntry>, Error> {
        match self.position(name) {
            Ok(i) => self.entry_at(i).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// The names in order, without parsing any line.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.lines.len()).map(|i| self.name_at(i))
    }

    pub fn entries(&self) -> Result<Vec<IndexEntry>, Error> {
        (0..self.lines.len()).map(|i| self.entry_at(i)).collect()
    }

    /// What became of `slot` according to this view.
    pub fn outcome_of(&self, slot: u64) -> SlotOutcome {
        if slot > self.header.slot || slot < self.header.from || self.header.from == 0 {
            return SlotOutcome::Forgotten;
        }
        match self.header.refused.iter().find(|(s, _)| *s == slot) {
            None => SlotOutcome::Applied,
            Some((_, Some(refusal))) => SlotOutcome::Refused(refusal.clone()),
            Some((_, None)) => SlotOutcome::Voided,
        }
    }

    /// Every record this view names: the secrets' and the trust's.
    pub fn records(&self) -> Result<Vec<u64>, Error> {
        let mut records: Vec<u64> = self.entries()?.iter().map(|e| e.record).collect();
        records.extend(self.header.trust);
        Ok(records)
    }

    /// The next view: `header` with these entry lines changed. `upsert` replaces or inserts an
    /// entry, `remove` takes one out by name; untouched lines are copied as bytes.
    pub fn next(&self, header: Header, upsert: Option<&IndexEntry>, remove: Option<&str>) -> Result<View, Error> {
        let mut replaced: Vec<Vec<u8>> = Vec::new();
        let mut skip = None;
        let mut insert_at = self.lines.len();
        if let Some(entry) = upsert {
            let line = serde_json::to_vec(entry).map_err(|_| corrupt())?;
            match self.position(&entry.name) {
                Ok(i) => {
                    skip = Some(i);
                    insert_at = i;
                }
                Err(i) => insert_at = i,
            }
            replaced.push(line);
        } else if let Some(name) = remove {
            if let Ok(i) = self.position(name) {
                skip = Some(i);
            }
        }
        let mut out: Vec<&[u8]> = Vec::with_capacity(self.lines.len() + 1);
        for i in 0..self.lines.len() {
            if i == insert_at {
                out.extend(replaced.iter().map(Vec::as_slice));
            }
            if Some(i) != skip {
                let (start, end) = self.lines[i];
                out.push(&self.bytes[start..end]);
            }
        }
        if insert_at == self.lines.len() {
            out.extend(replaced.iter().map(Vec::as_slice));
        }
        Ok(View::build(header, Vec::new(), &out))
    }

    fn build(header: Header, mut bytes: Vec<u8>, lines: &[&[u8]]) -> View {
        bytes.extend(serde_json::to_vec(&header).unwrap_or_default());
        let mut ranges = Vec::with_capacity(lines.len());
        for line in lines {
            bytes.push(b'\n');
            ranges.push((bytes.len(), bytes.len() + line.len()));
            bytes.extend_from_slice(line);
        }
        View { header, bytes, lines: ranges }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, version: u64) -> IndexEntry {
        IndexEntry {
            name: name.into(),
            registries: vec!["ghcr.io".into()],
            managed: false,
            created: 1,
            modified: 2,
            version,
            record: version,
            verification: None,
            kind: crate::provider::Kind::Static,
        }
    }

    fn header(slot: u64) -> Header {
        Header { slot, ..Header::default() }
    }

    #[test]
    fn lines_stay_sorted_and_unique_through_upserts_and_removals() {
        let mut view = View::empty();
        for (slot, name) in [(1, "b"), (2, "a"), (3, "c"), (4, "b")] {
            view = view.next(header(slot), Some(&entry(name, slot)), None).unwrap();
            view = View::decode(view.bytes().to_vec()).unwrap();
        }
        assert_eq!(view.names().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(view.find("b").unwrap().unwrap().version, 4);
        assert_eq!(view.used(), 3);
        let view = view.next(header(5), None, Some("a")).unwrap();
        assert_eq!(view.names().collect::<Vec<_>>(), ["b", "c"]);
        assert!(view.find("a").unwrap().is_none());
        assert_eq!(view.slot(), 5);
        assert_eq!(View::decode(view.bytes().to_vec()).unwrap(), view);
    }

    #[test]
    fn a_name_that_is_a_prefix_of_another_is_told_apart() {
        let mut view = View::empty();
        for (slot, name) in [(1, "ab"), (2, "a"), (3, "a.b"), (4, "a-b")] {
            view = view.next(header(slot), Some(&entry(name, slot)), None).unwrap();
        }
        for name in ["a", "ab", "a.b", "a-b"] {
            assert_eq!(view.find(name).unwrap().unwrap().name, name);
        }
        assert!(view.find("a.").unwrap().is_none());
    }

    #[test]
    fn outcomes_are_remembered_for_the_window_only() {
        let view = View::empty()
            .next(
                Header {
                    slot: 70,
                    from: 7,
                    refused: vec![(9, None), (12, Some(Refusal::Exists))],
                    ..Header::default()
                },
                None,
                None,
            )
            .unwrap();
        assert_eq!(view.outcome_of(9), SlotOutcome::Voided);
        assert_eq!(view.outcome_of(12), SlotOutcome::Refused(Refusal::Exists));
        assert_eq!(view.outcome_of(10), SlotOutcome::Applied);
        assert_eq!(view.outcome_of(6), SlotOutcome::Forgotten);
        assert_eq!(view.outcome_of(71), SlotOutcome::Forgotten);
    }

    #[test]
    fn a_foreign_or_damaged_value_is_refused_as_corrupt() {
        assert!(View::decode(b"not json".to_vec()).is_err());
        assert!(View::decode(b"{\"slot\":1}\n[1,2]".to_vec()).is_err());
        assert_eq!(View::decode(b"{\"slot\":1}".to_vec()).unwrap().used(), 0);
    }
}
