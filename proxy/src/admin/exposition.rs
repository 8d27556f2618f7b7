//! `/metrics` content negotiation: the Prometheus text format 0.0.4 by
//! default, OpenMetrics 1.0.0 when the request's `Accept` asks for it.
//!
//! [`Metrics::encode`](crate::metrics::Metrics::encode) writes OpenMetrics;
//! [`prometheus_text`] rewrites it into 0.0.4 line by line. The two formats
//! share sample lines (names, labels, escaping, `_bucket`/`_sum`/`_count`);
//! they differ in the metadata: 0.0.4 names a counter's `# HELP`/`# TYPE`
//! after its `_total` sample, knows no `# UNIT`, no exemplars, no `info` or
//! `stateset` types, and has no `# EOF`.

/// `Content-Type` of the Prometheus text exposition format 0.0.4.
pub(crate) const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `Content-Type` of the OpenMetrics text exposition format 1.0.0.
pub(crate) const OPENMETRICS_TEXT: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether one `Accept` header value asks for OpenMetrics: one of its media
/// ranges is `application/openmetrics-text` with a quality above 0.
/// Wildcards (`*/*`) do not count: they get the default format.
pub(crate) fn accepts_openmetrics(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut params = range.split(';').map(str::trim);
        let media = params.next().unwrap_or_default();
        media.eq_ignore_ascii_case("application/openmetrics-text")
            && !params.any(|param| {
                param.split_once('=').is_some_and(|(key, value)| {
                    key.trim().eq_ignore_ascii_case("q")
                        && value.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
                })
            })
    })
}

/// Rewrites an OpenMetrics text exposition as Prometheus text 0.0.4.
pub(crate) fn prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // OpenMetrics writes `# HELP` before `# TYPE`; the 0.0.4 name of the
    // family is known only from the type, so the help waits for it.
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, text)) = help.take() {
                // A help with no type after it: keep it as it was.
                push_help(&mut out, name, text);
            }
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (name, kind) = match kind {
                "counter" => (format!("{family}_total"), "counter"),
                "info" => (format!("{family}_info"), "gauge"),
                "gauge" | "histogram" | "summary" => (family.to_owned(), kind),
                "stateset" => (family.to_owned(), "gauge"),
                _ => (family.to_owned(), "untyped"),
            };
            if let Some((help_family, text)) = help.take() {
                let help_name = if help_family == family {
                    name.as_str()
                } else {
                    help_family
                };
                push_help(&mut out, help_name, text);
            }
            out.push_str("# TYPE ");
            out.push_str(&name);
            out.push(' ');
            out.push_str(kind);
            out.push('\n');
            continue;
        }
        if let Some((name, text)) = help.take() {
            push_help(&mut out, name, text);
        }
        if line.starts_with('#') {
            continue;
        }
        out.push_str(without_exemplar(line));
        out.push('\n');
    }
    if let Some((name, text)) = help {
        push_help(&mut out, name, text);
    }
    out
}

fn push_help(out: &mut String, name: &str, text: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    out.push_str(text);
    out.push('\n');
}

/// A sample line without its OpenMetrics exemplar (` # {labels} value`).
/// Label values cannot hold a bare ` # {` (quotes are escaped), but the
/// search starts after the label set to be sure.
fn without_exemplar(line: &str) -> &str {
    let labels_end = match line.find(['{', ' ']) {
        Some(at) if line.as_bytes().get(at) == Some(&b'{') => closing_brace(line).unwrap_or(0),
        _ => 0,
    };
    match line.get(labels_end..).and_then(|rest| rest.find(" # ")) {
        Some(at) => line.get(..labels_end + at).unwrap_or(line),
        None => line,
    }
}

/// Byte offset just past the `}` that closes the label set, skipping
/// quoted label values and their escapes.
fn closing_brace(line: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (at, byte) in line.bytes().enumerate() {
        match (quoted, escaped, byte) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => quoted = false,
            (false, _, b'"') => quoted = true,
            (false, _, b'}') => return Some(at + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENMETRICS: &str = "\
# HELP passthru_connections Connections.
# TYPE passthru_connections counter
passthru_connections_total{listener=\"a\"} 3
# HELP passthru_upstream_connect_seconds Connect time.
# TYPE passthru_upstream_connect_seconds histogram
# UNIT passthru_upstream_connect_seconds seconds
passthru_upstream_connect_seconds_sum 0.5
passthru_upstream_connect_seconds_count 2
passthru_upstream_connect_seconds_bucket{le=\"+Inf\"} 2
# HELP passthru_active_connections Open.
# TYPE passthru_active_connections gauge
passthru_active_connections{listener=\"a # {x}\"} 1
# HELP build Build.
# TYPE build info
build_info{version=\"1\"} 1
# HELP hits Hits.
# TYPE hits counter
hits_total 2 # {trace=\"7\"} 1.0
# EOF
";

    #[test]
    fn openmetrics_becomes_prometheus_text_0_0_4() {
        let text = prometheus_text(OPENMETRICS);
        assert_eq!(
            text,
            "\
# HELP passthru_connections_total Connections.
# TYPE passthru_connections_total counter
passthru_connections_total{listener=\"a\"} 3
# HELP passthru_upstream_connect_seconds Connect time.
# TYPE passthru_upstream_connect_seconds histogram
passthru_upstream_connect_seconds_sum 0.5
passthru_upstream_connect_seconds_count 2
passthru_upstream_connect_seconds_bucket{le=\"+Inf\"} 2
# HELP passthru_active_connections Open.
# TYPE passthru_active_connections gauge
passthru_active_connections{listener=\"a # {x}\"} 1
# HELP build_info Build.
# TYPE build_info gauge
build_info{version=\"1\"} 1
# HELP hits_total Hits.
# TYPE hits_total counter
hits_total 2
"
        );
    }

    #[test]
    fn only_an_explicit_openmetrics_range_selects_openmetrics() {
        for accept in [
            "application/openmetrics-text",
            "application/openmetrics-text; version=1.0.0",
            "text/plain;q=0.5, Application/OpenMetrics-Text;version=0.0.1;q=0.4",
            // What Prometheus itself sends.
            "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
        ] {
            assert!(accepts_openmetrics(accept), "{accept}");
        }
        for accept in [
            "",
            "*/*",
            "text/plain",
            "text/plain; version=0.0.4",
            "application/openmetrics-text;q=0",
            "application/openmetrics-textual",
        ] {
            assert!(!accepts_openmetrics(accept), "{accept}");
        }
    }
}
