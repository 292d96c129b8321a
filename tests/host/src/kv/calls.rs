//! Counts of what the guests asked of a store, for benches and tests that report what an operation
//! costs: each guest call by kind (`get`, `increment`, …), key family and outcome, and, on
//! DynamoDB, each request of DynamoDB's API it took (what AWS bills) with the capacity units it
//! consumed. Counting changes nothing a guest sees.
//!
//! A key's family is the key with its variable parts replaced: a part that starts with `t-` followed
//! by hex digits (a tenant's prefix, or any digest) becomes `P`, and a part of decimal digits
//! becomes `*`; so `t-3f…:v:17` is `P:v:*` and `t-3f…:seq` is `P:seq`. The host knows nothing of
//! the domain's key layout beyond that.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// What became of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Ok,
    /// Refused because another writer got there first (DynamoDB's `increment`: its transaction was
    /// cancelled on its condition); nothing was written.
    Contended,
    /// Any other error.
    Failed,
}

/// One line of the counts: a guest call's kind (or `dynamodb:<Operation>` for a DynamoDB request),
/// the family of its key (empty for calls without one), and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallKind {
    pub kind: String,
    pub family: String,
    pub outcome: Outcome,
}

/// How many calls of a kind, and (DynamoDB requests only) the read and write capacity units they
/// consumed, as DynamoDB computes them: a strongly consistent read of an item is one unit per 4 KB
/// of it (rounded up, at least one; half that when eventually consistent), a write one unit per
/// 1 KB, a transactional write twice that.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    pub calls: u64,
    pub read_units: f64,
    pub write_units: f64,
}

#[derive(Default)]
pub struct Calls {
    counts: Mutex<BTreeMap<CallKind, Tally>>,
}

impl Calls {
    pub fn record(&self, kind: &str, family: String, outcome: Outcome) {
        self.add(kind, family, outcome, 0.0, 0.0);
    }

    pub fn add(&self, kind: &str, family: String, outcome: Outcome, read_units: f64, write_units: f64) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let tally = counts.entry(CallKind { kind: kind.to_owned(), family, outcome }).or_default();
        tally.calls += 1;
        tally.read_units += read_units;
        tally.write_units += write_units;
    }

    /// Everything counted so far.
    pub fn snapshot(&self) -> BTreeMap<CallKind, Tally> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The family of one key (see the module's documentation).
pub fn family(key: &str) -> String {
    key.split(':')
        .map(|part| {
            let digest = part.strip_prefix("t-").is_some_and(|hex| {
                hex.len() >= 8 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            });
            if digest {
                "P"
            } else if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                "*"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// The family of several keys: theirs if they share one, else `mixed`.
pub fn family_of_all<'a>(keys: impl IntoIterator<Item = &'a String>) -> String {
    let mut families = keys.into_iter().map(|k| family(k));
    let Some(first) = families.next() else { return String::new() };
    if families.all(|f| f == first) {
        first
    } else {
        "mixed".to_owned()
    }
}

/// DynamoDB's capacity units for `bytes` of an item: one per `unit` bytes, rounded up, at least one.
pub fn units(bytes: usize, unit: usize) -> f64 {
    bytes.div_ceil(unit).max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_hide_tenants_and_numbers() {
        let prefix = "t-0123456789abcdef0123456789abcdef";
        assert_eq!(family(&format!("{prefix}:v:17")), "P:v:*");
        assert_eq!(family(&format!("{prefix}:seq")), "P:seq");
        assert_eq!(family(&format!("{prefix}:s:4:2:p")), "P:s:*:*:p");
        assert_eq!(family("auth:cache:12"), "auth:cache:*");
        assert_eq!(family("t-x:v"), "t-x:v", "not a digest");
        let keys = [format!("{prefix}:r:1"), format!("{prefix}:r:2")];
        assert_eq!(family_of_all(&keys), "P:r:*");
        let keys = [format!("{prefix}:r:1"), format!("{prefix}:v:2")];
        assert_eq!(family_of_all(&keys), "mixed");
    }

    #[test]
    fn tallies_add_up() {
        let calls = Calls::default();
        calls.record("get", "P:v:*".into(), Outcome::Ok);
        calls.record("get", "P:v:*".into(), Outcome::Ok);
        calls.add("dynamodb:GetItem", String::new(), Outcome::Ok, 2.0, 0.0);
        calls.record("increment", "P:seq".into(), Outcome::Contended);
        let all = calls.snapshot();
        let get = CallKind { kind: "get".into(), family: "P:v:*".into(), outcome: Outcome::Ok };
        assert_eq!(all[&get].calls, 2);
        let item = CallKind { kind: "dynamodb:GetItem".into(), family: String::new(), outcome: Outcome::Ok };
        assert_eq!(all[&item].read_units, 2.0);
        assert_eq!(units(4097, 4096), 2.0);
        assert_eq!(units(0, 1024), 1.0);
    }
}
