//! The tenant's state after one slot of its write log (a *view*): a header line, then one line per
//! secret, sorted by name.
//!
//! ```text
//! {"slot":12,"limit":80,"refused":[[11,{"exists":null}]],"from":1,"garbage":[9],"lines":"0000000000000046"}
//! {"name":"a-registry","registries":["ghcr.io"],...,"version":7,"record":7}
//! {"name":"b-registry",...}
//! ```
//!
//! The format is chosen so that reads cost what they use, not what the tenant holds. The header's
//! last field, `lines`, is a table of where each entry line starts (8 hex digits per line, counted
//! from the first entry line), so decoding a view parses the header and reads the table, and never
//! scans the entries themselves:
//! - a get finds its line by binary search on the name each line starts with, and parses that line;
//! - the quota needs only the header (the number of secrets is the number of lines);
//! - a page parses only its own lines, found by position;
//! - a pull-time lookup reads the host index, the header's field `hosts` just before `lines`, and
//!   parses only the lines of secrets that have a key on the registry asked for (see below).
//!
//! The host index files each line under [`host::index_key`] of each of its secret's hosts, as
//! records `key=line,line` sorted by key and joined by spaces (a line whose host is a glob, which
//! no key can stand for, is filed under `*`, which every lookup reads):
//!
//! ```text
//! "hosts":"*=4 ghcr.io:=0,2 registry.example.com:5000=1,3"
//! ```
//!
//! It is written with the lines, in the same `set`, so it holds whatever the lines hold: the log's
//! guarantees cover it with no protocol of its own. A view without it (written before it existed)
//! is looked up by parsing every line, and its next view is written with it; a release that
//! predates it writes views without it, which hold the same state (the index is derived from the
//! lines), so a slot's view written by both releases during an upgrade reads the same either way.
//!
//! Writers splice one line in or out. A view is written once per slot and its bytes are a function
//! of the previous view and the slot's decided operation (see `log::op`), so every writer of the
//! same slot writes the same bytes. A view without the table (written before it existed) is read
//! by scanning its lines; readers that predate the table ignore the field.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::error::{Error, Internal};
use crate::host;
use crate::index::IndexEntry;

/// How many of the latest slots a view remembers the outcome of (for a writer that was paused
/// while others applied its slot, see `log`): the production value of the log's `Shape::outcomes`.
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
    /// The log format this view is written in (absent: 1); a build that does not know it never
    /// writes a view after it (see `log`, "Formats").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<u32>,
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
    lines: Lines,
    /// The byte range of the host index's text, if the view has one.
    hosts: Option<(usize, usize)>,
}

/// The host index: each key's lines, in order.
type HostIndex = BTreeMap<String, Vec<usize>>;

/// The record of the lines whose host has no key (a glob): every lookup reads it.
const UNKEYED: &str = "*";

/// Where the entry lines are (in name order).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lines {
    /// Through the header's table, read one entry at a time as lines are asked for: the table
    /// starts at byte `at`, the first entry line at byte `base`, and there are `count` lines.
    Table { at: usize, base: usize, count: usize },
    /// The byte ranges (without the newline) of a view's lines found by scanning it: a view
    /// written before the table existed, or one without entries.
    Scanned(Vec<(usize, usize)>),
}

const NAME_PREFIX: &[u8] = b"{\"name\":\"";
/// How the header's line table starts (it is the header's last field).
const LINES_FIELD: &[u8] = b",\"lines\":\"";
/// Hex digits per entry of the line table.
const OFFSET_DIGITS: usize = 8;
/// How the host index starts (the field before `lines`).
const HOSTS_FIELD: &[u8] = b",\"hosts\":\"";

fn corrupt() -> Error {
    Internal::CorruptRecord.into()
}

impl View {
    pub fn empty() -> View {
        View::build(Header::default(), &[], &HostIndex::new())
    }

    /// Reads a view: parses its header and checks where its table says the entries start, without
    /// reading the entries (each line is checked when it is first read; a view the table does not
    /// match answers corrupt there).
    pub fn decode(bytes: Vec<u8>) -> Result<View, Error> {
        // The header is the first line (serde writes JSON without raw newlines). Its last fields,
        // the host index and the line table, are found from its end and read as text when used;
        // serde parses only the fields before them, so a read never scans tables it does not use.
        let header_end = memchr::memchr(b'\n', &bytes).unwrap_or(bytes.len());
        let head = &bytes[..header_end];
        let mut hosts = None;
        let (header, lines) = match line_table(head) {
            Some(table) => {
                let at = header_end - 2 - table.len();
                let mut fields_end = at - LINES_FIELD.len();
                hosts = host_table(&head[..fields_end]);
                if let Some((start, _)) = hosts {
                    fields_end = start - HOSTS_FIELD.len();
                }
                let (base, count) = (header_end + 1, table.len() / OFFSET_DIGITS);
                let starts_at_base = bytes.get(header_end) == Some(&b'\n') && offset(&bytes, at) == Some(0);
                if count == 0 || table.len() % OFFSET_DIGITS != 0 || !starts_at_base {
                    return Err(corrupt());
                }
                let mut fields = head[..fields_end].to_vec();
                fields.push(b'}');
                (parse_header(&fields)?, Lines::Table { at, base, count })
            }
            None => (parse_header(head)?, Lines::Scanned(View::lines_by_scanning(&bytes, header_end)?)),
        };
        Ok(View { header, bytes, lines, hosts })
    }

    /// Line `i`'s byte range (without the newline), if it is a line of this view and well formed.
    fn range(&self, i: usize) -> Option<(usize, usize)> {
        match &self.lines {
            Lines::Scanned(ranges) => ranges.get(i).copied(),
            &Lines::Table { at, base, count } => {
                if i >= count {
                    return None;
                }
                let start = base + offset(&self.bytes, at + OFFSET_DIGITS * i)?;
                let last = i + 1 == count;
                let end = if last {
                    self.bytes.len()
                } else {
                    (base + offset(&self.bytes, at + OFFSET_DIGITS * (i + 1))?).checked_sub(1)?
                };
                let line = self.bytes.get(start..end)?;
                // The last line runs to the end: a newline in it means the table left a line out.
                let ends_right = if last { !line.contains(&b'\n') } else { self.bytes[end] == b'\n' };
                (line.starts_with(NAME_PREFIX) && ends_right).then_some((start, end))
            }
        }
    }

    /// The entry lines' ranges of a view written without the table.
    fn lines_by_scanning(bytes: &[u8], header_end: usize) -> Result<Vec<(usize, usize)>, Error> {
        let mut lines = Vec::new();
        let mut start = header_end + 1;
        if header_end < bytes.len() && bytes[header_end] != b'\n' {
            return Err(corrupt());
        }
        while start < bytes.len() {
            let end = bytes[start..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |i| start + i);
            if !bytes[start..end].starts_with(NAME_PREFIX) {
                return Err(corrupt());
            }
            lines.push((start, end));
            start = end + 1;
        }
        Ok(lines)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The log format this view is written in.
    pub fn format(&self) -> u32 {
        self.header.format.unwrap_or(1)
    }

    pub fn slot(&self) -> u64 {
        self.header.slot
    }

    pub fn limit(&self) -> u32 {
        self.header.limit.unwrap_or(DEFAULT_LIMIT)
    }

    pub fn used(&self) -> u32 {
        (match &self.lines {
            Lines::Table { count, .. } => *count,
            Lines::Scanned(ranges) => ranges.len(),
        }) as u32
    }

    /// The name line `i` starts with (names are `[a-z0-9.-]`, so never escaped in JSON).
    /// Empty if line `i` is not there or damaged (reading its entry then answers corrupt).
    pub fn name_at(&self, i: usize) -> &str {
        let Some((start, end)) = self.range(i) else { return "" };
        let rest = &self.bytes[start + NAME_PREFIX.len()..end];
        let len = rest.iter().position(|b| *b == b'"').unwrap_or(rest.len());
        std::str::from_utf8(&rest[..len]).unwrap_or("")
    }

    /// Where `name`'s line is (`Ok`), or would go (`Err`); corrupt if the search meets a damaged line.
    fn position(&self, name: &str) -> Result<Result<usize, usize>, Error> {
        let (mut low, mut high) = (0, self.used() as usize);
        while low < high {
            let mid = (low + high) / 2;
            self.range(mid).ok_or_else(corrupt)?;
            match self.name_at(mid).cmp(name) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(Ok(mid)),
            }
        }
        Ok(Err(low))
    }

    pub fn entry_at(&self, i: usize) -> Result<IndexEntry, Error> {
        let (start, end) = self.range(i).ok_or_else(corrupt)?;
        serde_json::from_slice(&self.bytes[start..end]).map_err(|_| corrupt())
    }

    pub fn find(&self, name: &str) -> Result<Option<IndexEntry>, Error> {
        match self.position(name)? {
            Ok(i) => self.entry_at(i).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// The names in order, without parsing any line.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.used() as usize).map(|i| self.name_at(i))
    }

    pub fn entries(&self) -> Result<Vec<IndexEntry>, Error> {
        (0..self.used() as usize).map(|i| self.entry_at(i)).collect()
    }

    /// The entries that may hold a key for `authority` (`host[:port]`), in name order: through the
    /// host index, those filed under its key and those whose host has none (globs); every entry
    /// when the view has no index. A superset of the entries with a host that matches it: the
    /// caller checks each (`resolve`).
    pub fn entries_on(&self, authority: &str) -> Result<Vec<IndexEntry>, Error> {
        let Some((start, end)) = self.hosts else { return self.entries() };
        let text = &self.bytes[start..end];
        let key = host::index_key(authority);
        let mut lines = Vec::new();
        for wanted in key.as_deref().into_iter().chain([UNKEYED]) {
            if let Some(record) = find_record(text, wanted.as_bytes())? {
                lines.extend(line_numbers(record).ok_or_else(corrupt)?);
            }
        }
        lines.sort_unstable();
        lines.dedup();
        lines.into_iter().map(|i| self.entry_at(i)).collect()
    }

    /// The host index as written, or built from the lines for a view written without one.
    fn host_index(&self) -> Result<HostIndex, Error> {
        let Some((start, end)) = self.hosts else {
            let mut index = HostIndex::new();
            for (i, entry) in self.entries()?.iter().enumerate() {
                file(&mut index, entry, i);
            }
            return Ok(index);
        };
        let mut index = HostIndex::new();
        for (key, lines) in records(&self.bytes[start..end]).ok_or_else(corrupt)? {
            let key = std::str::from_utf8(key).map_err(|_| corrupt())?;
            index.insert(key.to_owned(), line_numbers(lines).ok_or_else(corrupt)?);
        }
        Ok(index)
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
        let count = self.used() as usize;
        let mut insert_at = count;
        if let Some(entry) = upsert {
            let line = serde_json::to_vec(entry).map_err(|_| corrupt())?;
            match self.position(&entry.name)? {
                Ok(i) => {
                    skip = Some(i);
                    insert_at = i;
                }
                Err(i) => insert_at = i,
            }
            replaced.push(line);
        } else if let Some(name) = remove {
            if let Ok(i) = self.position(name)? {
                skip = Some(i);
            }
        }
        let mut out: Vec<&[u8]> = Vec::with_capacity(count + 1);
        // Where each old line goes in the new view (none: replaced or removed), for the index.
        let mut moved: Vec<Option<usize>> = Vec::with_capacity(count);
        for i in 0..count {
            if i == insert_at {
                out.extend(replaced.iter().map(Vec::as_slice));
            }
            if Some(i) == skip {
                moved.push(None);
            } else {
                let (start, end) = self.range(i).ok_or_else(corrupt)?;
                moved.push(Some(out.len()));
                out.push(&self.bytes[start..end]);
            }
        }
        if insert_at == count {
            out.extend(replaced.iter().map(Vec::as_slice));
        }
        let mut index = HostIndex::new();
        for (key, lines) in self.host_index()? {
            let lines: Vec<usize> = lines.iter().filter_map(|&i| moved.get(i).copied().flatten()).collect();
            if !lines.is_empty() {
                index.insert(key, lines);
            }
        }
        if let Some(entry) = upsert {
            file(&mut index, entry, insert_at);
        }
        Ok(View::build(header, &out, &index))
    }

    fn build(header: Header, lines: &[&[u8]], index: &HostIndex) -> View {
        let mut bytes = serde_json::to_vec(&header).unwrap_or_default();
        if lines.is_empty() {
            return View { header, bytes, lines: Lines::Scanned(Vec::new()), hosts: None };
        }
        // The header always has fields (`slot`, `from`), so the index joins them with a comma.
        bytes.pop();
        bytes.extend_from_slice(HOSTS_FIELD);
        let hosts_at = bytes.len();
        for (n, (key, lines)) in index.iter().enumerate() {
            if n > 0 {
                bytes.push(b' ');
            }
            bytes.extend_from_slice(key.as_bytes());
            bytes.push(b'=');
            let numbers: Vec<String> = lines.iter().map(usize::to_string).collect();
            bytes.extend_from_slice(numbers.join(",").as_bytes());
        }
        let hosts = Some((hosts_at, bytes.len()));
        bytes.push(b'"');
        bytes.extend_from_slice(LINES_FIELD);
        let at = bytes.len();
        let mut offset = 0;
        for line in lines {
            bytes.extend_from_slice(format!("{offset:0width$x}", width = OFFSET_DIGITS).as_bytes());
            offset += line.len() + 1;
        }
        bytes.extend_from_slice(b"\"}");
        let base = bytes.len() + 1;
        for line in lines {
            bytes.push(b'\n');
            bytes.extend_from_slice(line);
        }
        View { header, bytes, lines: Lines::Table { at, base, count: lines.len() }, hosts }
    }
}

/// Files line `i` under the key of each of its entry's hosts (or under [`UNKEYED`]), keeping each
/// record's lines in order.
fn file(index: &mut HostIndex, entry: &IndexEntry, i: usize) {
    for registry in &entry.registries {
        let key = host::index_key(registry).unwrap_or_else(|| UNKEYED.to_owned());
        let lines = index.entry(key).or_default();
        if let Err(at) = lines.binary_search(&i) {
            lines.insert(at, i);
        }
    }
}

/// The host index's records, `(key, lines)`, if its text is well formed and sorted by key.
fn records(text: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    let records: Vec<(&[u8], &[u8])> = text
        .split(|b| *b == b' ')
        .map(|record| {
            let equals = memchr::memchr(b'=', record)?;
            Some((&record[..equals], &record[equals + 1..]))
        })
        .collect::<Option<_>>()?;
    records.windows(2).all(|w| w[0].0 < w[1].0).then_some(records)
}

/// The lines of the record filed under `key` in the index's text, found by binary search over its
/// bytes (records are sorted by key; a probe moves to the start of the record it lands in), so a
/// lookup reads a few records whatever the size of the index.
fn find_record<'a>(text: &'a [u8], key: &[u8]) -> Result<Option<&'a [u8]>, Error> {
    let (mut low, mut high) = (0, text.len());
    while low < high {
        let mid = low + (high - low) / 2;
        let start = memchr::memrchr(b' ', &text[low..mid]).map_or(low, |at| low + at + 1);
        let end = memchr::memchr(b' ', &text[start..]).map_or(text.len(), |at| start + at);
        let record = &text[start..end];
        let equals = memchr::memchr(b'=', record).ok_or_else(corrupt)?;
        match record[..equals].cmp(key) {
            std::cmp::Ordering::Equal => return Ok(Some(&record[equals + 1..])),
            std::cmp::Ordering::Less => low = end + 1,
            std::cmp::Ordering::Greater => high = start,
        }
    }
    Ok(None)
}

/// A record's line numbers (`3,17,40`).
fn line_numbers(text: &[u8]) -> Option<Vec<usize>> {
    std::str::from_utf8(text).ok()?.split(',').map(|n| n.parse().ok()).collect()
}

/// The byte range of the host index's text, if the header (its JSON text up to the `lines` field)
/// ends with one.
fn host_table(header: &[u8]) -> Option<(usize, usize)> {
    let inner = header.strip_suffix(b"\"")?;
    let quote = memchr::memrchr(b'"', inner)?;
    inner[..=quote].ends_with(HOSTS_FIELD).then_some((quote + 1, inner.len()))
}

fn parse_header(text: &[u8]) -> Result<Header, Error> {
    serde_json::from_slice(text).map_err(|_| corrupt())
}

/// The number written in the table entry at byte `at` (8 hex digits).
fn offset(bytes: &[u8], at: usize) -> Option<usize> {
    let digits = bytes.get(at..at + OFFSET_DIGITS)?;
    digits.iter().try_fold(0usize, |n, d| Some(n * 16 + (*d as char).to_digit(16)? as usize))
}

/// The table of the header's last field `lines`, if the header (its JSON text) has one.
fn line_table(header: &[u8]) -> Option<&[u8]> {
    let inner = header.strip_suffix(b"\"}")?;
    let quote = memchr::memrchr(b'"', inner)?;
    inner[..=quote].ends_with(LINES_FIELD).then(|| &inner[quote + 1..])
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
        assert!(View::decode(b"{\"slot\":1}x".to_vec()).is_err());
        assert_eq!(View::decode(b"{\"slot\":1}".to_vec()).unwrap().used(), 0);
    }

    fn three() -> View {
        let mut view = View::empty();
        for (slot, name) in [(1, "b"), (2, "a"), (3, "c")] {
            view = view.next(header(slot), Some(&entry(name, slot)), None).unwrap();
        }
        view
    }

    #[test]
    fn the_header_ends_with_a_table_of_where_each_line_starts() {
        let view = three();
        let text = String::from_utf8(view.bytes().to_vec()).unwrap();
        let (head, body) = text.split_once('\n').unwrap();
        let lines: Vec<&str> = body.split('\n').collect();
        let (a, b) = (lines[0].len() + 1, lines[0].len() + lines[1].len() + 2);
        assert!(head.ends_with(&format!(",\"lines\":\"00000000{a:08x}{b:08x}\"}}")), "{head}");
        assert_eq!(lines.iter().map(|l| &l[9..10]).collect::<String>(), "abc");
        // Read back through the table; and a reader that never heard of it sees the same header.
        assert_eq!(View::decode(view.bytes().to_vec()).unwrap(), view);
        let plain: Header = serde_json::from_str(head).unwrap();
        assert_eq!(&plain, view.header());
        // Taking every line out takes the table out too.
        let mut emptied = view.clone();
        for (slot, name) in [(4, "a"), (5, "b"), (6, "c")] {
            emptied = emptied.next(header(slot), None, Some(name)).unwrap();
        }
        assert_eq!(emptied.bytes(), br#"{"slot":6,"from":0}"#);
    }

    fn on(name: &str, version: u64, registries: &[&str]) -> IndexEntry {
        IndexEntry { registries: registries.iter().map(|r| r.to_string()).collect(), ..entry(name, version) }
    }

    /// What a lookup must find: every entry with a host the keyring matches to the authority.
    fn covering(entries: &[IndexEntry], authority: &str) -> Vec<String> {
        let matches = |e: &&IndexEntry| e.registries.iter().any(|h| crate::resolve::keyring::matches(h, authority));
        entries.iter().filter(matches).map(|e| e.name.clone()).collect()
    }

    #[test]
    fn the_host_index_files_each_line_under_its_hosts_and_globs_under_a_star() {
        let mut view = View::empty();
        let secrets: [(&str, &[&str]); 4] = [
            ("a", &["ghcr.io"]),
            ("b", &["registry.example.com:5000", "ghcr.io"]),
            ("c", &["*.example.com"]),
            ("d", &["docker.io"]),
        ];
        for (slot, (name, registries)) in secrets.iter().enumerate() {
            view = view.next(header(slot as u64 + 1), Some(&on(name, 1, registries)), None).unwrap();
        }
        let text = String::from_utf8(view.bytes().to_vec()).unwrap();
        assert!(
            text.contains(r#","hosts":"*=2 docker.io:=3 ghcr.io:=0,1 registry.example.com:5000=1","lines":""#),
            "{text}"
        );
        let view = View::decode(view.bytes().to_vec()).unwrap();
        let names = |authority: &str| -> Vec<String> {
            view.entries_on(authority).unwrap().into_iter().map(|e| e.name).collect()
        };
        assert_eq!(names("ghcr.io"), ["a", "b", "c"]);
        assert_eq!(names("registry.example.com:5000"), ["b", "c"]);
        assert_eq!(names("registry.example.com"), ["c"]);
        assert_eq!(names("quay.io"), ["c"]);
        // Removing a line moves the lines after it, and the index with them.
        let view = view.next(header(9), None, Some("a")).unwrap();
        let text = String::from_utf8(view.bytes().to_vec()).unwrap();
        assert!(text.contains(r#","hosts":"*=1 docker.io:=2 ghcr.io:=0 registry.example.com:5000=0","#), "{text}");
    }

    #[test]
    fn a_damaged_host_index_is_refused_as_corrupt() {
        let text = String::from_utf8(three().bytes().to_vec()).unwrap();
        for damaged in ["ghcr.io:=0,x", "ghcr.io:0", "ghcr.io:="] {
            let bytes = text.replace("ghcr.io:=0,1,2", damaged).into_bytes();
            assert!(View::decode(bytes).unwrap().entries_on("ghcr.io").is_err(), "{damaged}");
        }
        // Records out of order: no next view is written on it (a lookup may miss, never mix).
        let unsorted = View::decode(text.replace("ghcr.io:=0,1,2", "zz:=1 ghcr.io:=0,2").into_bytes()).unwrap();
        assert!(unsorted.next(header(9), Some(&entry("d", 9)), None).is_err());
        let beyond = text.replace("ghcr.io:=0,1,2", "ghcr.io:=0,7").into_bytes();
        assert!(View::decode(beyond).unwrap().entries_on("ghcr.io").is_err());
    }

    #[test]
    fn a_record_is_found_by_binary_search_among_many() {
        let keys: Vec<String> = (0..300).map(|i| format!("r{:04}.example.com:", i * 2)).collect();
        let text = keys.iter().enumerate().map(|(i, k)| format!("{k}={i}")).collect::<Vec<_>>().join(" ");
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(find_record(text.as_bytes(), key.as_bytes()).unwrap(), Some(i.to_string().as_bytes()));
        }
        for absent in ["r0001.example.com:", "a", "zzz", "r0598.example.com", "r0598.example.com:x"] {
            assert_eq!(find_record(text.as_bytes(), absent.as_bytes()).unwrap(), None, "{absent}");
        }
        assert_eq!(find_record(b"", b"a").unwrap(), None);
    }

    proptest::proptest! {
        /// Through any run of upserts and removals the index kept line by line is the index built
        /// from the lines, and a lookup through it finds every entry the keyring would match.
        #[test]
        fn the_host_index_kept_by_splicing_is_the_index_of_the_lines(
            ops in proptest::collection::vec((0..6usize, proptest::option::of(proptest::collection::vec(0..7usize, 1..3))), 1..40)
        ) {
            const NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
            const HOSTS: [&str; 7] =
                ["ghcr.io", "ghcr.io:443", "docker.io", "*.example.com", "r1.example.com", "[::1]:5000", "r?.example.com"];
            let mut view = View::empty();
            for (slot, (name, hosts)) in ops.iter().enumerate() {
                let header = header(slot as u64 + 1);
                view = match hosts {
                    Some(hosts) => {
                        let registries: Vec<&str> = hosts.iter().map(|h| HOSTS[*h]).collect();
                        view.next(header, Some(&on(NAMES[*name], slot as u64, &registries)), None).unwrap()
                    }
                    None => view.next(header, None, Some(NAMES[*name])).unwrap(),
                };
                let view = View::decode(view.bytes().to_vec()).unwrap();
                let rebuilt = View { hosts: None, ..view.clone() };
                proptest::prop_assert_eq!(view.host_index().unwrap(), rebuilt.host_index().unwrap());
                let entries = view.entries().unwrap();
                for authority in HOSTS.iter().copied().chain(["r2.example.com", "quay.io", "[::1]:5000"]) {
                    let found: Vec<IndexEntry> = view.entries_on(authority).unwrap();
                    proptest::prop_assert_eq!(covering(&found, authority), covering(&entries, authority));
                }
            }
        }
    }

    proptest::proptest! {
        /// Review: hosts drawn from every character a host, a port, an IPv6 literal or a glob can
        /// hold (upper case, `[`, `]`, `:`, `*`, `?`, `/`, `%`, `=`, space), and every registry a
        /// lookup can ask for (what `parse_registry` accepts): a lookup through the index finds
        /// every entry the keyring matches.
        #[test]
        fn a_lookup_through_the_host_index_finds_every_entry_the_keyring_matches(
            hosts in proptest::collection::vec(proptest::collection::vec("[aA.:\\[\\]1*?/%= -]{0,6}", 1..3), 1..8),
            authorities in proptest::collection::vec("[aA1.:\\[\\]-]{1,8}", 1..8),
        ) {
            let mut view = View::empty();
            for (i, registries) in hosts.iter().enumerate() {
                let registries: Vec<&str> = registries.iter().map(String::as_str).collect();
                let name = format!("s{i}");
                view = view.next(header(i as u64 + 1), Some(&on(&name, 1, &registries)), None).unwrap();
            }
            let view = View::decode(view.bytes().to_vec()).unwrap();
            let entries = view.entries().unwrap();
            // The registries a lookup can ask for: what `registry=` (and an image's registry) parse to.
            let asked = authorities.iter().chain(hosts.iter().flatten());
            for authority in asked.filter_map(|a| crate::resolve::reference::parse_registry(a).ok()) {
                let found = view.entries_on(&authority).unwrap();
                proptest::prop_assert_eq!(covering(&found, &authority), covering(&entries, &authority), "{}", authority);
            }
        }
    }

    /// Review: a view of the release between the line table and the host index (a `lines` table,
    /// no `hosts`) decodes to the same header and entries, a lookup reads every line, and its
    /// next view carries the index.
    #[test]
    fn a_view_with_a_line_table_but_no_host_index_is_looked_up_whole() {
        let mut view = View::empty();
        for (slot, (name, registries)) in
            [("a", &["ghcr.io"][..]), ("b", &["quay.io", "*.example.com"]), ("c", &["quay.io"])].iter().enumerate()
        {
            view = view.next(header(slot as u64 + 1), Some(&on(name, 1, registries)), None).unwrap();
        }
        let text = String::from_utf8(view.bytes().to_vec()).unwrap();
        let (start, end) = (text.find(",\"hosts\":\"").unwrap(), text.find(",\"lines\":\"").unwrap());
        let older = View::decode(format!("{}{}", &text[..start], &text[end..]).into_bytes()).unwrap();
        assert!(older.hosts.is_none());
        assert_eq!(older.header(), view.header());
        assert_eq!(older.entries().unwrap(), view.entries().unwrap());
        let names =
            |v: &View, authority: &str| -> Vec<String> { covering(&v.entries_on(authority).unwrap(), authority) };
        for authority in ["quay.io", "ghcr.io", "x.example.com", "docker.io"] {
            assert_eq!(names(&older, authority), names(&view, authority), "{authority}");
        }
        let next = older.next(header(9), None, Some("a")).unwrap();
        assert!(String::from_utf8(next.bytes().to_vec()).unwrap().contains(r#","hosts":"*=0 quay.io:=0,1","#));
    }

    #[test]
    fn a_view_written_before_the_table_is_read_by_scanning() {
        let view = three();
        let text = String::from_utf8(view.bytes().to_vec()).unwrap();
        let (head, body) = text.split_once('\n').unwrap();
        let old_head = &head[..head.find(",\"hosts\"").unwrap()];
        let old = View::decode(format!("{old_head}}}\n{body}").into_bytes()).unwrap();
        assert_eq!(old.names().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(old.find("b").unwrap().unwrap().version, 1);
        assert_eq!(old.header(), view.header());
        // Its next view is written with the table.
        let next = old.next(header(4), Some(&entry("d", 4)), None).unwrap();
        assert!(line_table(next.bytes().split(|b| *b == b'\n').next().unwrap()).is_some());
    }

    #[test]
    fn a_table_that_does_not_match_its_lines_is_refused_as_corrupt() {
        let text = String::from_utf8(three().bytes().to_vec()).unwrap();
        let table_at = text.find(",\"lines\":\"").unwrap() + 10;
        let table = &text[table_at..table_at + 24];
        let with_table = |t: &str| format!("{}{t}{}", &text[..table_at], &text[table_at + 24..]).into_bytes();
        // Lines are checked as they are read: decoding and then reading every entry must fail.
        let read_whole = |bytes: Vec<u8>| View::decode(bytes).and_then(|view| view.entries());
        assert_eq!(read_whole(with_table(table)).unwrap().len(), 3);
        // A line missing, one too many, a start inside a line, digits that are not hex, a first
        // line that does not start right after the header.
        assert!(read_whole(with_table(&table[..16])).is_err());
        assert!(read_whole(with_table(&format!("{table}{}", &table[16..]))).is_err());
        assert!(read_whole(with_table(&format!("{}{}", &table[..16], "00000003"))).is_err());
        assert!(read_whole(with_table(&format!("{}{}", &table[..16], "0000zz03"))).is_err());
        assert!(read_whole(with_table(&format!("{}{}", "00000001", &table[8..]))).is_err());
        // A damaged line is refused where it is read: a get whose search meets it answers corrupt,
        // never "not found".
        let damaged = View::decode(with_table(&format!("{}{}", &table[..16], "00000003"))).unwrap();
        assert!(damaged.entry_at(1).is_err() && damaged.entry_at(2).is_err());
        assert!(damaged.find("a").is_err());
        assert_eq!(damaged.entry_at(0).unwrap().name, "a");
        assert!(damaged.next(header(9), Some(&entry("d", 9)), None).is_err(), "no next view is built on it");
        // Entries cut off after the header; a table but no entries.
        assert!(View::decode(text.as_bytes()[..text.find('\n').unwrap()].to_vec()).is_err());
        assert!(View::decode(with_table("").to_vec()).is_err());
    }
}
