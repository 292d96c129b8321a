//! Spin's HTTP route matching (crates/routes): exact routes, `:name` segments, trailing `/...`
//! wildcards; the most specific match wins; private triggers are not routable from outside.

use anyhow::{bail, Result};

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Exact(String),
    Named(String),
}

#[derive(Debug, Clone)]
struct Route {
    component: String,
    /// The route as written in the manifest, e.g. `/foo/...`.
    raw: String,
    /// The route after Spin's sanitising (single trailing slash stripped; `/` becomes ``).
    based: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

type Captures = Vec<(String, String)>;

#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

/// The outcome of routing: what the `spin-*` request headers are computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch {
    pub component: String,
    pub based_route: String,
    pub raw_route: String,
    /// The part of the path matched by a trailing wildcard (Spin's `spin-path-info`).
    pub path_info: String,
    pub named: Vec<(String, String)>,
}

impl RouteMatch {
    /// What Spin builds for a service-chaining request to `http://<component>.spin.internal<path>`.
    pub fn synthetic(component: &str, path: &str) -> RouteMatch {
        RouteMatch {
            component: component.to_string(),
            based_route: "/...".into(),
            raw_route: "/...".into(),
            path_info: path.to_string(),
            named: vec![],
        }
    }

    pub fn raw_route_or_prefix(&self) -> &str {
        self.raw_route.strip_suffix("/...").unwrap_or(&self.raw_route)
    }
}

fn sanitize(s: &str) -> &str {
    s.strip_suffix('/').unwrap_or(s)
}

impl Router {
    /// `routes` are (component, raw route) pairs of the public triggers, in manifest order. As in
    /// Spin, a later trigger with the same route replaces an earlier one.
    pub fn build<'a>(routes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Router> {
        let mut out: Vec<Route> = Vec::new();
        for (component, raw) in routes {
            let abs = if raw.starts_with('/') { raw.to_string() } else { format!("/{raw}") };
            let based = sanitize(&abs).to_string();
            let (prefix, wildcard) = match based.strip_suffix("/...").or_else(|| based.strip_suffix("/*")) {
                Some(p) => (p.to_string(), true),
                None if based == "/..." => (String::new(), true),
                None => (based.clone(), false),
            };
            let mut segments = Vec::new();
            for seg in prefix.split('/').filter(|s| !s.is_empty()) {
                if seg.contains("...") || seg == "*" {
                    bail!("Error parsing route {based} associated with component {component}: wildcards are allowed only at the end");
                }
                segments.push(match seg.strip_prefix(':') {
                    Some(name) => Segment::Named(name.to_string()),
                    None => Segment::Exact(seg.to_string()),
                });
            }
            let route = Route { component: component.to_string(), raw: raw.to_string(), based, segments, wildcard };
            out.retain(|r| r.raw != route.raw);
            out.push(route);
        }
        Ok(Router { routes: out })
    }

    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let path_segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut best: Option<(Vec<u8>, &Route, Captures)> = None;
        for route in &self.routes {
            let Some(named) = matches(route, &path_segments) else {
                continue;
            };
            // Specificity, segment by segment: literal beats named beats wildcard; a longer
            // literal prefix beats a shorter one (routefinder's ordering).
            let mut rank: Vec<u8> = route
                .segments
                .iter()
                .map(|s| match s {
                    Segment::Exact(_) => 3,
                    Segment::Named(_) => 2,
                })
                .collect();
            rank.push(if route.wildcard { 1 } else { 4 });
            if best.as_ref().is_none_or(|(b, _, _)| rank > *b) {
                best = Some((rank, route, named));
            }
        }
        let (_, route, named) = best?;
        let path_info = if route.wildcard {
            let rest = &path_segments[route.segments.len()..];
            match (rest.is_empty(), path.ends_with('/')) {
                (true, false) => String::new(),
                (true, true) => "/".to_string(),
                (false, false) => format!("/{}", rest.join("/")),
                (false, true) => format!("/{}/", rest.join("/")),
            }
        } else {
            String::new()
        };
        Some(RouteMatch {
            component: route.component.clone(),
            based_route: route.based.clone(),
            raw_route: route.raw.clone(),
            path_info,
            named,
        })
    }
}

fn matches(route: &Route, path: &[&str]) -> Option<Vec<(String, String)>> {
    if path.len() < route.segments.len() || (!route.wildcard && path.len() != route.segments.len()) {
        return None;
    }
    let mut named = Vec::new();
    for (seg, part) in route.segments.iter().zip(path) {
        match seg {
            Segment::Exact(s) if s == part => {}
            Segment::Exact(_) => return None,
            Segment::Named(n) => named.push((n.clone(), part.to_string())),
        }
    }
    Some(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::build([("gateway", "/v2/..."), ("health", "/v2/health"), ("users", "/users/:id"), ("root", "/")])
            .unwrap()
    }

    #[test]
    fn exact_route_beats_wildcard() {
        let m = router().route("/v2/health").unwrap();
        assert_eq!(m.component, "health");
        assert_eq!(m.path_info, "");
    }

    #[test]
    fn trailing_wildcard_matches_prefix_and_below() {
        let r = router();
        let m = r.route("/v2/admin/dockerRegistrySecrets/x").unwrap();
        assert_eq!(m.component, "gateway");
        assert_eq!(m.path_info, "/admin/dockerRegistrySecrets/x");
        assert_eq!(m.based_route, "/v2/...");
        assert_eq!(m.raw_route_or_prefix(), "/v2");
        assert_eq!(r.route("/v2").unwrap().path_info, "");
        assert_eq!(r.route("/v2/").unwrap().path_info, "/");
        assert_eq!(r.route("/v2/a/").unwrap().path_info, "/a/");
    }

    #[test]
    fn exact_root_does_not_match_other_paths() {
        let r = router();
        assert_eq!(r.route("/").unwrap().component, "root");
        assert_eq!(r.route("/").unwrap().based_route, "");
        assert!(r.route("/nothing").is_none());
        assert!(r.route("/v3/x").is_none());
    }

    #[test]
    fn named_segment_captures() {
        let m = router().route("/users/42").unwrap();
        assert_eq!(m.component, "users");
        assert_eq!(m.named, vec![("id".to_string(), "42".to_string())]);
        assert!(router().route("/users/42/x").is_none());
    }

    #[test]
    fn longest_wildcard_wins_and_later_duplicate_replaces() {
        let r = Router::build([("a", "/..."), ("b", "/x/..."), ("c", "/x/...")]).unwrap();
        assert_eq!(r.route("/x/y").unwrap().component, "c");
        assert_eq!(r.route("/y").unwrap().component, "a");
        assert_eq!(r.route("/y").unwrap().path_info, "/y");
    }

    #[test]
    fn synthetic_match_for_chaining() {
        let m = RouteMatch::synthetic("create", "/v2/x");
        assert_eq!(m.path_info, "/v2/x");
        assert_eq!(m.raw_route_or_prefix(), "");
    }
}
