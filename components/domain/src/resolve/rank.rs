//! Which of several matching credentials wins: a Docker credential helper and a kubelet credential
//! provider can hand on only one per registry or pattern, so the order of the answer decides, and
//! it must not be left to chance (a rotation in progress, or a stale secret beside a fresh one).
//!
//! The order, each rule breaking the ties of the one before:
//! 1. the most specific pattern first, as the kubelet's keyring orders its index (reverse byte order
//!    of the patterns, [`super::keyring::most_specific_first`]): `host/team` before `host`, a name
//!    before a glob;
//! 2. the secret's last verification: succeeded, then never checked, then failed (a refusal by the
//!    registry is the likeliest sign of a stale password; an unchecked secret may still work);
//! 3. the most recently modified secret first (the newer password of a rotation);
//! 4. the secret's name, then the key's position in it, so that equal candidates always come in
//!    the same order.
//!
//! Each answered credential says why it comes before the next one ([`Reason`]).

use std::cmp::Ordering;

use serde::Serialize;

use crate::check::LastCheck;

/// How a secret's last verification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum Standing {
    /// Its last verification found every registry accepting the credentials.
    Verified,
    /// Never verified since its credentials were last set.
    Unchecked,
    /// Its last verification found a registry refusing them, or could not reach one.
    Failed,
}

impl Standing {
    pub fn of(check: Option<LastCheck>) -> Standing {
        match check {
            Some(LastCheck { ok: true, .. }) => Standing::Verified,
            Some(LastCheck { ok: false, .. }) => Standing::Failed,
            None => Standing::Unchecked,
        }
    }
}

/// Why a credential comes before the next one of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// Its pattern is more specific than the next one's.
    MoreSpecificMatch,
    /// The same pattern; its last verification succeeded, the next one's did not or never ran.
    Verified,
    /// The same pattern; never verified, while the next one's last verification failed.
    NotFailed,
    /// The same pattern and verification standing; its secret was modified more recently.
    ModifiedLater,
    /// All of that equal: by the secret's name, then the key's position in it.
    Name,
}

/// What the order looks at, for one candidate credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub pattern: &'a str,
    pub standing: Standing,
    /// The secret's `modified`, Unix milliseconds.
    pub modified: u64,
    pub secret: &'a str,
}

/// The first rule on which `a` and `b` differ, and which of them it puts first.
fn compare(a: &Candidate, b: &Candidate) -> (Ordering, Reason) {
    [
        (b.pattern.cmp(a.pattern), Reason::MoreSpecificMatch),
        (
            a.standing.cmp(&b.standing),
            if a.standing.min(b.standing) == Standing::Verified { Reason::Verified } else { Reason::NotFailed },
        ),
        (b.modified.cmp(&a.modified), Reason::ModifiedLater),
        (a.secret.cmp(b.secret), Reason::Name),
    ]
    .into_iter()
    .find(|(order, _)| order.is_ne())
    .unwrap_or((Ordering::Equal, Reason::Name))
}

/// Sorts `chosen` (indices of `candidates`) into the answer's order; candidates equal on every rule
/// keep their order (the key's position in its secret).
pub fn order(candidates: &[Candidate], chosen: &mut [usize]) {
    chosen.sort_by(|&a, &b| compare(&candidates[a], &candidates[b]).0);
}

/// Why `ahead` comes before `next` (both in the order [`order`] gave them).
pub fn reason(ahead: &Candidate, next: &Candidate) -> Reason {
    compare(ahead, next).1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(pattern: &'static str, standing: Standing, modified: u64, secret: &'static str) -> Candidate<'static> {
        Candidate { pattern, standing, modified, secret }
    }

    /// The order of `candidates`, as secret names, and the reason of each against the next.
    fn ranked(candidates: &[Candidate<'static>]) -> (Vec<&'static str>, Vec<Reason>) {
        let mut chosen: Vec<usize> = (0..candidates.len()).collect();
        order(candidates, &mut chosen);
        let names = chosen.iter().map(|&i| candidates[i].secret).collect();
        let reasons = chosen.windows(2).map(|w| reason(&candidates[w[0]], &candidates[w[1]])).collect();
        (names, reasons)
    }

    #[test]
    fn the_most_specific_pattern_wins_whatever_the_rest_says() {
        use Standing::*;
        let (names, reasons) = ranked(&[
            candidate("r.example", Verified, 900, "wide-verified-newest"),
            candidate("*.example", Verified, 999, "glob"),
            candidate("r.example/team", Failed, 1, "team-failed-oldest"),
        ]);
        assert_eq!(names, ["team-failed-oldest", "wide-verified-newest", "glob"]);
        assert_eq!(reasons, [Reason::MoreSpecificMatch, Reason::MoreSpecificMatch]);
    }

    #[test]
    fn among_equal_patterns_verified_comes_first_then_unchecked_then_failed() {
        use Standing::*;
        let (names, reasons) = ranked(&[
            candidate("r.example", Failed, 300, "stale"),
            candidate("r.example", Unchecked, 100, "unchecked"),
            candidate("r.example", Verified, 200, "fresh"),
        ]);
        assert_eq!(names, ["fresh", "unchecked", "stale"]);
        assert_eq!(reasons, [Reason::Verified, Reason::NotFailed]);
        // Verified before failed is `Verified`, whatever the modification times.
        let (names, reasons) =
            ranked(&[candidate("r.example", Failed, 999, "failed"), candidate("r.example", Verified, 1, "ok")]);
        assert_eq!((names, reasons), (vec!["ok", "failed"], vec![Reason::Verified]));
    }

    #[test]
    fn among_equal_standing_the_most_recently_modified_wins_then_the_name() {
        use Standing::*;
        let (names, reasons) = ranked(&[
            candidate("r.example", Unchecked, 100, "old"),
            candidate("r.example", Unchecked, 500, "new"),
            candidate("r.example", Unchecked, 100, "also-old"),
        ]);
        assert_eq!(names, ["new", "also-old", "old"]);
        assert_eq!(reasons, [Reason::ModifiedLater, Reason::Name]);
    }

    #[test]
    fn the_order_does_not_depend_on_the_order_candidates_come_in() {
        use Standing::*;
        let all = [
            candidate("r.example", Failed, 300, "a"),
            candidate("r.example", Verified, 100, "b"),
            candidate("r.example/x", Unchecked, 1, "c"),
            candidate("r.example", Verified, 200, "d"),
            candidate("r.example", Unchecked, 400, "e"),
            candidate("r.example", Unchecked, 400, "f"),
        ];
        let expected = ["c", "d", "b", "e", "f", "a"];
        let mut permuted = all.to_vec();
        for shift in 0..all.len() {
            permuted.rotate_left(1);
            assert_eq!(ranked(&permuted).0, expected, "rotation {shift}");
            let mut reversed = permuted.clone();
            reversed.reverse();
            assert_eq!(ranked(&reversed).0, expected, "reversed rotation {shift}");
        }
    }

    #[test]
    fn standing_reads_the_last_check() {
        assert_eq!(Standing::of(None), Standing::Unchecked);
        assert_eq!(Standing::of(Some(LastCheck { at: 1, ok: true })), Standing::Verified);
        assert_eq!(Standing::of(Some(LastCheck { at: 1, ok: false })), Standing::Failed);
    }
}
