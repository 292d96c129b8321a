//! The list call's query: SAP's `$top`, `$skip`, `$count`, plus our `$search`, and how a page is
//! cut from a tenant's secrets.
//!
//! `$top` defaults to 1000 and may not exceed it (SAP sets no limit; we bound the work and the
//! answer of one call, and 1000 is far above the default quota of 50). `$top=0` is allowed: with
//! `$count=true` it asks for the count alone, as OData permits.

use serde::Serialize;

use crate::Error;

pub const DEFAULT_TOP: usize = 1000;
pub const MAX_TOP: usize = 1000;
/// A name is at most 253 characters, so a longer search could never match.
pub const MAX_SEARCH_LEN: usize = 253;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// At most this many items are returned: 0..=[`MAX_TOP`].
    pub top: usize,
    /// This many matching items are passed over first.
    pub skip: usize,
    /// `$count=true`: `count` is the total that matches, not the number returned.
    pub count: bool,
    /// ASCII-lower-cased; matched as a substring of the lower-cased name. `None`: no filter.
    pub search: Option<String>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery { top: DEFAULT_TOP, skip: 0, count: false, search: None }
    }
}

/// One page of a list, serialised as SAP's `{"count": N, "resources": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub count: usize,
    pub resources: Vec<T>,
}

fn invalid(message: String) -> Error {
    Error::InvalidQuery(message)
}

/// Digits only: `str::parse` would also take a leading '+', which no client means.
fn non_negative(parameter: &str, value: &str) -> Result<usize, Error> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!("`{parameter}` must be a non-negative integer")));
    }
    value.parse().map_err(|_| invalid(format!("`{parameter}` is too large")))
}

impl ListQuery {
    /// Reads the raw URL query (without '?'). Parameter names are matched case-insensitively
    /// (OData 4.01); values of `$count` too, since SDKs send Python's `True`. Parameters not
    /// starting with '$' are ignored; an unknown or repeated `$` parameter is refused.
    pub fn parse(query: Option<&str>) -> Result<ListQuery, Error> {
        let mut result = ListQuery::default();
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if !name.starts_with('$') {
                continue;
            }
            let lower = name.to_ascii_lowercase();
            if seen.contains(&lower) {
                return Err(invalid(format!("`{lower}` is given more than once")));
            }
            match lower.as_str() {
                "$top" => {
                    let top = non_negative("$top", &value)?;
                    if top > MAX_TOP {
                        return Err(invalid(format!("`$top` must be at most {MAX_TOP}")));
                    }
                    result.top = top;
                }
                "$skip" => result.skip = non_negative("$skip", &value)?,
                "$count" => {
                    result.count = if value.eq_ignore_ascii_case("true") {
                        true
                    } else if value.eq_ignore_ascii_case("false") {
                        false
                    } else {
                        return Err(invalid("`$count` must be true or false".into()));
                    }
                }
                "$search" => {
                    if value.chars().count() > MAX_SEARCH_LEN {
                        return Err(invalid(format!("`$search` must be at most {MAX_SEARCH_LEN} characters")));
                    }
                    result.search = Some(value.to_ascii_lowercase()).filter(|s| !s.is_empty());
                }
                _ => {
                    return Err(invalid(
                        "Unknown query parameter; this list takes `$top`, `$skip`, `$count` and `$search`".into(),
                    ))
                }
            }
            seen.push(lower);
        }
        Ok(result)
    }

    /// Sorts by name (stable), keeps what matches `$search`, then skips and takes.
    pub fn apply<T>(&self, mut items: Vec<T>, name_of: impl Fn(&T) -> &str) -> Page<T> {
        items.sort_by(|a, b| name_of(a).cmp(name_of(b)));
        let (count, chosen) = self.select(items.len(), |i| name_of(&items[i]));
        let mut items: Vec<Option<T>> = items.into_iter().map(Some).collect();
        Page { count, resources: chosen.into_iter().filter_map(|i| items[i].take()).collect() }
    }

    /// The page over `len` items already in name order (`name(i)` is the name of item `i`): the
    /// positions it shows, and its `count`. Lets a caller parse only the items of the page; without
    /// `$search` no name is looked at, so a page costs what it shows, not what the list holds.
    pub fn select<'a>(&self, len: usize, name: impl Fn(usize) -> &'a str) -> (usize, Vec<usize>) {
        let (total, chosen): (usize, Vec<usize>) = match &self.search {
            None => (len, (self.skip.min(len)..self.skip.saturating_add(self.top).min(len)).collect()),
            Some(search) => {
                let matching: Vec<usize> =
                    (0..len).filter(|i| name(*i).to_ascii_lowercase().contains(search.as_str())).collect();
                (matching.len(), matching.into_iter().skip(self.skip).take(self.top).collect())
            }
        };
        (if self.count { total } else { chosen.len() }, chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> ListQuery {
        ListQuery::parse(Some(query)).unwrap()
    }

    fn refusal(query: &str) -> String {
        match ListQuery::parse(Some(query)) {
            Err(error @ Error::InvalidQuery(_)) => {
                assert_eq!(error.status(), 400);
                error.message()
            }
            other => panic!("{query:?} should be refused, got {other:?}"),
        }
    }

    fn names(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("secret-{i:02}")).collect()
    }

    #[test]
    fn defaults_without_query() {
        let expected = ListQuery { top: 1000, skip: 0, count: false, search: None };
        assert_eq!(ListQuery::parse(None).unwrap(), expected);
        assert_eq!(parse(""), expected);
        assert_eq!(parse("foo=bar&top=5&x"), expected);
    }

    #[test]
    fn top() {
        assert_eq!(parse("$top=5").top, 5);
        assert_eq!(parse("$top=0").top, 0);
        assert_eq!(parse("$top=1000").top, 1000);
        assert_eq!(parse("$top=0007").top, 7);
        assert_eq!(parse("%24top=3").top, 3);
        assert!(refusal("$top=1001").contains("at most 1000"));
        for bad in ["-1", "+5", "1.5", "", "ten", "1e3", " 5", "99999999999999999999999"] {
            assert!(refusal(&format!("$top={bad}")).contains("`$top`"), "{bad}");
        }
        assert!(refusal("$top=99999999999999999999999").contains("too large"));
    }

    #[test]
    fn skip() {
        assert_eq!(parse("$skip=0").skip, 0);
        assert_eq!(parse("$skip=123456").skip, 123456);
        for bad in ["-1", "x", "", "1%2C2", "99999999999999999999999"] {
            assert!(refusal(&format!("$skip={bad}")).contains("`$skip`"), "{bad}");
        }
    }

    #[test]
    fn count() {
        assert!(parse("$count=true").count);
        assert!(parse("$count=True").count);
        assert!(!parse("$count=false").count);
        assert!(!parse("$count=False").count);
        for bad in ["", "1", "yes", "truee"] {
            assert!(refusal(&format!("$count={bad}")).contains("`$count`"), "{bad}");
        }
        assert!(refusal("$count").contains("`$count`"));
    }

    #[test]
    fn search_is_percent_decoded_and_lower_cased() {
        assert_eq!(parse("$search=Prod").search.as_deref(), Some("prod"));
        assert_eq!(parse("$search=a%2Eb").search.as_deref(), Some("a.b"));
        assert_eq!(parse("$search=a+b").search.as_deref(), Some("a b"));
        assert_eq!(parse("$search=").search, None);
        assert!(parse(&format!("$search={}", "x".repeat(253))).search.is_some());
        assert!(refusal(&format!("$search={}", "x".repeat(254))).contains("at most 253"));
    }

    #[test]
    fn unknown_and_repeated_dollar_parameters_are_refused() {
        assert!(refusal("$filter=x").contains("Unknown query parameter"));
        assert!(refusal("$orderby=name").contains("Unknown query parameter"));
        assert!(refusal("$top=1&$top=2").contains("more than once"));
        assert!(refusal("$top=1&$TOP=2").contains("more than once"));
        assert_eq!(parse("$Top=4&$SKIP=1").top, 4);
    }

    #[test]
    fn apply_sorts_and_pages() {
        let mut items = names(10);
        items.reverse();
        let page = parse("$top=3&$skip=2").apply(items, |s| s.as_str());
        assert_eq!(page.resources, ["secret-02", "secret-03", "secret-04"]);
        assert_eq!(page.count, 3);
    }

    #[test]
    fn apply_past_the_end_is_empty() {
        let page = parse("$skip=50").apply(names(10), |s| s.as_str());
        assert!(page.resources.is_empty());
        assert_eq!(page.count, 0);
        let page = parse("$skip=50&$count=true").apply(names(10), |s| s.as_str());
        assert_eq!(page.count, 10);
    }

    #[test]
    fn count_is_returned_items_unless_count_true_then_total_matching() {
        let page = parse("$top=2").apply(names(10), |s| s.as_str());
        assert_eq!(page.count, 2);
        let page = parse("$top=2&$count=true").apply(names(10), |s| s.as_str());
        assert_eq!((page.count, page.resources.len()), (10, 2));
        let page = parse("$top=0&$count=true").apply(names(10), |s| s.as_str());
        assert_eq!((page.count, page.resources.len()), (10, 0));
        let page = parse("$top=1&$count=true&$search=-0").apply(names(12), |s| s.as_str());
        assert_eq!(page.count, 10);
        assert_eq!(page.resources, ["secret-00"]);
    }

    #[test]
    fn search_matches_case_insensitive_substrings() {
        let items: Vec<String> = ["prod-ghcr", "dev", "my.prod", "Legacy-PROD"].map(String::from).to_vec();
        let page = parse("$search=PROD").apply(items, |s| s.as_str());
        assert_eq!(page.resources, ["Legacy-PROD", "my.prod", "prod-ghcr"]);
        assert_eq!(page.count, 3);
    }

    #[test]
    fn default_top_caps_a_page_at_1000() {
        let items: Vec<String> = (0..1005).map(|i| format!("s{i:04}")).collect();
        let page = ListQuery::default().apply(items, |s| s.as_str());
        assert_eq!(page.resources.len(), 1000);
    }

    #[test]
    fn page_serializes_as_sap_does() {
        let page = Page { count: 1, resources: vec!["a"] };
        assert_eq!(serde_json::to_string(&page).unwrap(), r#"{"count":1,"resources":["a"]}"#);
    }
}
