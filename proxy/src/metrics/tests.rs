use super::*;

fn metrics_for_public_and_gw() -> Metrics {
    Metrics::new(
        &["public".into()],
        &[("gw".into(), vec!["10.0.0.1:443".into()])],
    )
}

/// The value of the sample `series` (name and labels exactly as encoded).
fn value<'a>(exposition: &'a str, series: &str) -> Option<&'a str> {
    exposition.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
    })
}

fn refused_series(listener: &str, reason: &str) -> String {
    format!("passthru_refused_total{{listener=\"{listener}\",reason=\"{reason}\"}}")
}

#[test]
fn fresh_metrics_expose_every_series_a_dashboard_needs_at_zero() {
    let text = metrics_for_public_and_gw().encode();

    let active = r#"passthru_active_connections{listener="public"}"#;
    assert_eq!(value(&text, active), Some("0"));
    for direction in ["upstream", "downstream"] {
        let series =
            format!("passthru_bytes_total{{listener=\"public\",direction=\"{direction}\"}}");
        assert_eq!(value(&text, &series), Some("0"), "{series}");
    }
    for reason in Refusal::ALL {
        let series = refused_series("public", reason.as_str());
        assert_eq!(value(&text, &series), Some("0"), "{series}");
    }
    let refused_lines = text
        .lines()
        .filter(|line| line.starts_with("passthru_refused_total{"))
        .count();
    assert_eq!(refused_lines, 14);
    assert!(text.contains("# TYPE passthru_upstream_connect_seconds histogram\n"));
    assert_eq!(
        value(&text, "passthru_upstream_connect_seconds_count"),
        Some("0")
    );
    assert_eq!(
        value(&text, "passthru_upstream_connect_seconds_sum"),
        Some("0.0")
    );
    let bucket = r#"passthru_upstream_connect_seconds_bucket{le="0.0005"}"#;
    assert_eq!(value(&text, bucket), Some("0"));
    let bucket = r#"passthru_upstream_connect_seconds_bucket{le="10.0"}"#;
    assert_eq!(value(&text, bucket), Some("0"));
    let up = r#"passthru_backend_server_up{backend="gw",server="10.0.0.1:443"}"#;
    assert_eq!(value(&text, up), Some("1"));
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn connections_total_appears_with_the_first_finished_connection() {
    // prometheus-client writes no family that has no series yet, and the
    // route/backend/outcome labels are not known before a connection ends.
    let metrics = metrics_for_public_and_gw();
    assert!(!metrics.encode().contains("passthru_connections_total"));

    metrics.connection_finished("public", "gw-route", "gw", "ok");

    let text = metrics.encode();
    assert!(text.contains("# TYPE passthru_connections counter\n"));
    let series = r#"passthru_connections_total{listener="public",route="gw-route",backend="gw",outcome="ok"}"#;
    assert_eq!(value(&text, series), Some("1"));
}

#[test]
fn events_move_the_exact_series() {
    let metrics = metrics_for_public_and_gw();

    for _ in 0..3 {
        metrics.connection_opened("public");
    }
    metrics.connection_closed("public");
    metrics.connection_finished("public", "gw-route", "gw", "ok");
    metrics.connection_finished("public", "gw-route", "gw", "ok");
    metrics.connection_finished("public", "", "", "no_route");
    metrics.refused("public", Refusal::NoRoute);
    metrics.refused("public", Refusal::NoRoute);
    metrics.refused("public", Refusal::PlaintextHttp);
    metrics.bytes("public", 100, 2000);
    metrics.bytes("public", 1, 2);
    metrics.upstream_connect(0.003_906_25); // 2^-8: sums exactly
    metrics.upstream_connect(0.75);
    metrics.server_up("gw", "10.0.0.1:443", false);

    let text = metrics.encode();
    let expected = [
        (r#"passthru_active_connections{listener="public"}"#, "2"),
        (
            r#"passthru_connections_total{listener="public",route="gw-route",backend="gw",outcome="ok"}"#,
            "2",
        ),
        (
            r#"passthru_connections_total{listener="public",route="",backend="",outcome="no_route"}"#,
            "1",
        ),
        (
            r#"passthru_bytes_total{listener="public",direction="upstream"}"#,
            "101",
        ),
        (
            r#"passthru_bytes_total{listener="public",direction="downstream"}"#,
            "2002",
        ),
        ("passthru_upstream_connect_seconds_count", "2"),
        ("passthru_upstream_connect_seconds_sum", "0.75390625"),
        (
            r#"passthru_upstream_connect_seconds_bucket{le="0.0025"}"#,
            "0",
        ),
        (
            r#"passthru_upstream_connect_seconds_bucket{le="0.005"}"#,
            "1",
        ),
        (r#"passthru_upstream_connect_seconds_bucket{le="0.5"}"#, "1"),
        (r#"passthru_upstream_connect_seconds_bucket{le="1.0"}"#, "2"),
        (
            r#"passthru_upstream_connect_seconds_bucket{le="+Inf"}"#,
            "2",
        ),
        (
            r#"passthru_backend_server_up{backend="gw",server="10.0.0.1:443"}"#,
            "0",
        ),
    ];
    for (series, expected) in expected {
        assert_eq!(value(&text, series), Some(expected), "{series}");
    }
    for reason in Refusal::ALL {
        let count = match reason {
            Refusal::NoRoute => "2",
            Refusal::PlaintextHttp => "1",
            _ => "0",
        };
        let series = refused_series("public", reason.as_str());
        assert_eq!(value(&text, &series), Some(count), "{series}");
    }

    metrics.server_up("gw", "10.0.0.1:443", true);
    let up = r#"passthru_backend_server_up{backend="gw",server="10.0.0.1:443"}"#;
    assert_eq!(value(&metrics.encode(), up), Some("1"));
}

#[test]
fn unknown_listeners_and_reasons_get_their_own_series() {
    let metrics = metrics_for_public_and_gw();

    metrics.connection_opened("added-later");
    metrics.connection_opened("added-later");
    metrics.connection_closed("added-later");
    metrics.refused("added-later", Refusal::NotTls);
    metrics.refused("public", Refusal::ConnectMalformed("not HTTP"));
    metrics.bytes("added-later", 5, 6);

    let text = metrics.encode();
    let expected = [
        (
            r#"passthru_active_connections{listener="added-later"}"#,
            "1",
        ),
        (&refused_series("added-later", "not_tls"), "1"),
        (&refused_series("public", "plaintext_http"), "1"),
        (
            r#"passthru_bytes_total{listener="added-later",direction="upstream"}"#,
            "5",
        ),
        (
            r#"passthru_bytes_total{listener="added-later",direction="downstream"}"#,
            "6",
        ),
        (r#"passthru_active_connections{listener="public"}"#, "0"),
    ];
    for (series, expected) in expected {
        assert_eq!(value(&text, series), Some(expected), "{series}");
    }
}

#[test]
fn set_backends_adds_and_removes_server_series() {
    let metrics = metrics_for_public_and_gw();
    metrics.server_up("gw", "10.0.0.1:443", false);

    metrics.set_backends(&[
        (
            "gw".into(),
            vec!["10.0.0.1:443".into(), "10.0.0.2:443".into()],
        ),
        ("api".into(), vec!["10.0.2.1:8443".into()]),
    ]);

    let text = metrics.encode();
    let kept = r#"passthru_backend_server_up{backend="gw",server="10.0.0.1:443"}"#;
    let added = r#"passthru_backend_server_up{backend="gw",server="10.0.0.2:443"}"#;
    let other = r#"passthru_backend_server_up{backend="api",server="10.0.2.1:8443"}"#;
    assert_eq!(
        value(&text, kept),
        Some("0"),
        "a kept server keeps its state"
    );
    assert_eq!(value(&text, added), Some("1"));
    assert_eq!(value(&text, other), Some("1"));

    metrics.set_backends(&[("api".into(), vec!["10.0.2.1:8443".into()])]);
    // A health check still running for a removed server changes nothing.
    metrics.server_up("gw", "10.0.0.2:443", true);

    let text = metrics.encode();
    assert_eq!(value(&text, kept), None);
    assert_eq!(value(&text, added), None);
    assert_eq!(value(&text, other), Some("1"));
    let up_lines = text
        .lines()
        .filter(|line| line.starts_with("passthru_backend_server_up{"))
        .count();
    assert_eq!(up_lines, 1);
}

#[test]
fn label_values_are_escaped() {
    let listener = "we\"ird\\name\nx".to_owned();
    let metrics = Metrics::new(
        std::slice::from_ref(&listener),
        &[("b\"e".into(), vec!["host\\1:443".into()])],
    );
    metrics.connection_opened(&listener);

    let text = metrics.encode();
    let active = r#"passthru_active_connections{listener="we\"ird\\name\nx"}"#;
    assert_eq!(value(&text, active), Some("1"));
    let up = r#"passthru_backend_server_up{backend="b\"e",server="host\\1:443"}"#;
    assert_eq!(value(&text, up), Some("1"));
}

#[test]
fn connection_keys_cannot_run_into_each_other() {
    let (mut a, mut b) = (String::new(), String::new());
    connection_key(&mut a, ["l", "ab", "c", "ok"]);
    connection_key(&mut b, ["l", "a", "bc", "ok"]);
    assert_ne!(a, b);

    let metrics = metrics_for_public_and_gw();
    metrics.connection_finished("public", "1:a", "", "ok");
    metrics.connection_finished("public", "1", "a", "ok");
    let text = metrics.encode();
    let first =
        r#"passthru_connections_total{listener="public",route="1:a",backend="",outcome="ok"}"#;
    let second =
        r#"passthru_connections_total{listener="public",route="1",backend="a",outcome="ok"}"#;
    assert_eq!(value(&text, first), Some("1"));
    assert_eq!(value(&text, second), Some("1"));
}

#[test]
fn concurrent_updates_are_all_counted() {
    let metrics = metrics_for_public_and_gw();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..1000 {
                    metrics.connection_opened("public");
                    metrics.connection_finished("public", "r", "b", "ok");
                    metrics.refused("public", Refusal::NotTls);
                    metrics.bytes("public", 1, 2);
                }
            });
        }
    });
    let text = metrics.encode();
    let expected = [
        (r#"passthru_active_connections{listener="public"}"#, "4000"),
        (
            r#"passthru_connections_total{listener="public",route="r",backend="b",outcome="ok"}"#,
            "4000",
        ),
        (&refused_series("public", "not_tls"), "4000"),
        (
            r#"passthru_bytes_total{listener="public",direction="upstream"}"#,
            "4000",
        ),
        (
            r#"passthru_bytes_total{listener="public",direction="downstream"}"#,
            "8000",
        ),
    ];
    for (series, expected) in expected {
        assert_eq!(value(&text, series), Some(expected), "{series}");
    }
}

#[test]
fn client_hellos_fill_the_histograms_and_count_key_shares() {
    let metrics = metrics_for_public_and_gw();
    metrics.client_hello(
        "public",
        1986,
        2,
        1,
        ["x25519mlkem768", "x25519"].into_iter(),
    );
    metrics.client_hello("public", 517, 1, 1, ["x25519"].into_iter());
    let text = metrics.encode();
    assert!(text.contains("# TYPE passthru_client_hello_bytes histogram\n"));
    let bucket = |name: &str, le: &str| {
        let series = format!("{name}_bucket{{le=\"{le}\",listener=\"public\"}}");
        value(&text, &series).map(str::to_owned)
    };
    assert_eq!(
        bucket("passthru_client_hello_bytes", "1500.0").as_deref(),
        Some("1")
    );
    assert_eq!(
        bucket("passthru_client_hello_bytes", "2048.0").as_deref(),
        Some("2")
    );
    assert_eq!(
        bucket("passthru_client_hello_bytes", "16384.0").as_deref(),
        Some("2")
    );
    assert_eq!(
        bucket("passthru_client_hello_reads", "1.0").as_deref(),
        Some("1")
    );
    assert_eq!(
        bucket("passthru_client_hello_reads", "2.0").as_deref(),
        Some("2")
    );
    assert_eq!(
        bucket("passthru_client_hello_reads", "100.0").as_deref(),
        Some("2")
    );
    assert_eq!(
        bucket("passthru_client_hello_records", "4.0").as_deref(),
        Some("2")
    );
    let shares = |group: &str| {
        let series = format!(
            "passthru_client_hello_key_shares_total{{listener=\"public\",group=\"{group}\"}}"
        );
        value(&text, &series).map(str::to_owned)
    };
    assert_eq!(shares("x25519mlkem768").as_deref(), Some("1"));
    assert_eq!(shares("x25519").as_deref(), Some("2"));
}
