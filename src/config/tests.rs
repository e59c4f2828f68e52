use std::net::IpAddr;
use std::time::Duration;

use super::*;
use crate::ErrorKind;

fn parse(s: &str) -> Config {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn err(s: &str) -> String {
    let e = s
        .parse::<Config>()
        .and_then(|c| c.targets().map(|_| c))
        .expect_err(s);
    assert_eq!(e.kind(), ErrorKind::Config, "{s}: {e}");
    e.to_string()
}

fn t(host: Host, addr: Option<&str>, port: u16) -> Target {
    Target {
        host,
        addr: addr.map(|a| a.parse::<IpAddr>().unwrap()),
        port,
    }
}

#[test]
fn url_with_everything_parses() {
    let c = parse(
        "postgres://us%40er:p%3Ass@db.example:6543,[::1]:7000/app?application_name=svc&connect_timeout=3&statement_cache_capacity=0",
    );
    assert_eq!(c.user.as_deref(), Some("us@er"));
    assert_eq!(c.password.as_deref(), Some(&b"p:ss"[..]));
    assert_eq!(
        c.hosts,
        vec![Host::Tcp("db.example".into()), Host::Tcp("::1".into())]
    );
    assert_eq!(c.ports, vec![6543, 7000]);
    assert_eq!(c.dbname.as_deref(), Some("app"));
    assert_eq!(c.application_name.as_deref(), Some("svc"));
    assert_eq!(c.connect_timeout, Some(Duration::from_secs(3)));
    assert_eq!(c.statement_cache_capacity, 0);
}

#[test]
fn percent_encoded_path_host_is_a_unix_socket_dir() {
    let c = parse("postgresql://%2Ftmp%2Fpg:5433/db");
    assert_eq!(
        c.targets().unwrap(),
        vec![t(Host::Unix("/tmp/pg".into()), None, 5433)]
    );
}

#[test]
fn key_value_strings_handle_quotes_and_escapes() {
    let c = parse("host=/run/pg port = 5 user=me password='it\\'s a secret' dbname=x");
    assert_eq!(c.password.as_deref(), Some(&b"it's a secret"[..]));
    assert_eq!(
        c.targets().unwrap(),
        vec![t(Host::Unix("/run/pg".into()), None, 5)]
    );
    assert_eq!(c.dbname.as_deref(), Some("x"));
}

#[test]
fn hostaddr_pairs_with_host_one_to_one() {
    let c = parse("host=a.example,b.example hostaddr=10.0.0.1,10.0.0.2 port=1,2");
    assert_eq!(
        c.targets().unwrap(),
        vec![
            t(Host::Tcp("a.example".into()), Some("10.0.0.1"), 1),
            t(Host::Tcp("b.example".into()), Some("10.0.0.2"), 2),
        ]
    );
    let alone = parse("hostaddr=127.0.0.1 port=5");
    assert_eq!(
        alone.targets().unwrap(),
        vec![t(Host::Tcp("127.0.0.1".into()), Some("127.0.0.1"), 5)]
    );
    assert!(err("host=a,b hostaddr=10.0.0.1").contains("hostaddr"));
    assert!(err("hostaddr=not-an-ip").contains("not-an-ip"));
}

#[test]
fn no_host_means_the_socket_directory_then_localhost() {
    let targets = Config::new().targets().unwrap();
    assert_eq!(
        targets.last().unwrap(),
        &t(Host::Tcp("localhost".into()), None, 5432)
    );
}

#[test]
fn libpq_defaults_hold() {
    let c = Config::new();
    assert_eq!(c.get_ssl_mode(), SslMode::Prefer);
    assert_eq!(c.get_connect_timeout(), Some(DEFAULT_CONNECT_TIMEOUT));
    assert!(c.keepalives);
    assert_eq!(c.target_session_attrs, TargetSessionAttrs::Any);
    assert_eq!(c.channel_binding, ChannelBindingMode::Prefer);
    assert_eq!(
        parse("sslrootcert=system").get_ssl_mode(),
        SslMode::VerifyFull
    );
}

#[test]
fn every_libpq_value_is_validated() {
    for (bad, needle) in [
        ("target_session_attrs=bogus-value", "target_session_attrs"),
        ("sslmode=sometimes", "sslmode"),
        ("channel_binding=maybe", "channel_binding"),
        ("load_balance_hosts=roundrobin", "load_balance_hosts"),
        ("keepalives=yes", "keepalives"),
        ("keepalives_idle=-1", "keepalives_idle"),
        ("keepalives_interval=soon", "keepalives_interval"),
        ("keepalives_count=x", "keepalives_count"),
        ("tcp_user_timeout=-1", "tcp_user_timeout"),
        ("connect_timeout=soon", "connect_timeout"),
        ("client_encoding=LATIN1", "client_encoding"),
        (
            "ssl_min_protocol_version=TLSv1.1",
            "ssl_min_protocol_version",
        ),
        (
            "sslnegotiation=direct",
            "sslnegotiation=direct needs sslmode",
        ),
        ("sslnegotiation=sometimes", "sslnegotiation"),
        ("gssencmode=require", "gssencmode"),
        ("sslrootcert=system sslmode=require", "sslrootcert=system"),
        ("sslkey=/k.pem", "sslkey"),
    ] {
        let msg = err(bad);
        assert!(msg.contains(needle), "{bad}: {msg}");
    }
}

#[test]
fn unimplemented_libpq_options_are_refused_by_name() {
    for key in [
        "service",
        "require_auth",
        "requirepeer",
        "replication",
        "sslcrl",
        "sslpassword",
        "krbsrvname",
    ] {
        let msg = err(&format!("{key}=x"));
        assert!(msg.contains(key) && msg.contains("not supported"), "{msg}");
    }
    assert!(err("postgres://h/db?nonsense=1").contains("unknown connection option \"nonsense\""));
}

#[test]
fn liveness_options_are_taken() {
    let c = parse(
        "keepalives=0 keepalives_idle=7 keepalives_interval=2 keepalives_count=4 tcp_user_timeout=9000 connect_timeout=1",
    );
    assert!(!c.keepalives);
    assert_eq!(c.keepalives_idle, Duration::from_secs(7));
    assert_eq!(c.keepalives_interval, Duration::from_secs(2));
    assert_eq!(c.keepalives_count, 4);
    assert_eq!(c.tcp_user_timeout, Some(Duration::from_millis(9000)));
    // 0 means no limit; 1 stays 1 s (libpq's whole-second timer raises it to 2).
    assert_eq!(c.connect_timeout, Some(Duration::from_secs(1)));
    assert_eq!(parse("connect_timeout=0").connect_timeout, None);
}

#[test]
fn options_with_dash_c_reach_the_startup_packet_verbatim() {
    let c = parse("postgres://h/db?options=-c%20search_path%3Dapp%20-c%20work_mem%3D8MB");
    assert_eq!(
        c.options.as_deref(),
        Some("-c search_path=app -c work_mem=8MB")
    );
}

#[test]
fn bad_input_is_a_config_error_not_a_panic() {
    for bad in [
        "postgres://h:notaport/db",
        "postgres://h/%zz",
        "host=x port",
        "password='unterminated",
        "postgres://h:0/db",
        "postgres://a,b,c:1,:2/db",
        "postgres://h/db?%",
        "postgres://h/db?a",
    ] {
        err(bad);
    }
}

#[test]
fn config_errors_never_contain_the_password() {
    for bad in [
        "postgres://user:hunter%zz2@h/db",
        "postgres://user:hunter%2@h/db",
        "postgres://user:hunter2@h/db?password=hunter%zz",
        "postgres://user:hunter2@h:99999/db",
        "host=h password='hunter2",
        "host=h password=hunter2 port",
        // An unquoted password with a space: the rest of it looks like options.
        "host=h password=pass hunter2=x",
        "host=h password=pass port=hunter2",
        "host=h password=pass sslmode=hunter2",
        "password=pass x=1 target_session_attrs=hunter2",
    ] {
        let msg = err(bad);
        assert!(!msg.contains("hunter"), "{bad}: {msg}");
    }
}

#[test]
fn debug_output_hides_the_password() {
    let c = parse("postgres://u:hunter2@h/db");
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn the_environment_is_read_only_when_asked_and_fills_only_what_is_unset() {
    let vars = |name: &str| match name {
        "PGHOST" => Some("envhost".to_owned()),
        "PGUSER" => Some("envuser".to_owned()),
        "PGTARGETSESSIONATTRS" => Some("read-write".to_owned()),
        "PGCONNECT_TIMEOUT" => Some("5".to_owned()),
        _ => None,
    };
    let from_env = env::from_vars(vars).unwrap();
    let mut c = parse("postgres://me@urlhost/db");
    env::fill_from(&mut c, from_env);
    assert_eq!(c.hosts, vec![Host::Tcp("urlhost".into())]);
    assert_eq!(c.user.as_deref(), Some("me"));
    assert_eq!(c.target_session_attrs, TargetSessionAttrs::ReadWrite);
    assert_eq!(c.connect_timeout, Some(Duration::from_secs(5)));
}

#[test]
fn an_option_set_to_its_default_is_not_overridden_by_the_environment() {
    let vars = |name: &str| match name {
        "PGSSLMODE" => Some("require".to_owned()),
        "PGTARGETSESSIONATTRS" => Some("read-write".to_owned()),
        "PGCONNECT_TIMEOUT" => Some("3".to_owned()),
        "PGCHANNELBINDING" => Some("require".to_owned()),
        "PGLOADBALANCEHOSTS" => Some("random".to_owned()),
        "PGSSLSNI" => Some("0".to_owned()),
        _ => None,
    };
    let explicit = "host=h sslmode=prefer target_session_attrs=any connect_timeout=10 \
                    channel_binding=prefer load_balance_hosts=disable sslsni=1";
    let mut c = parse(explicit);
    env::fill_from(&mut c, env::from_vars(vars).unwrap());
    assert_eq!(c.get_ssl_mode(), SslMode::Prefer);
    assert_eq!(c.target_session_attrs, TargetSessionAttrs::Any);
    assert_eq!(c.connect_timeout, Some(Duration::from_secs(10)));
    assert_eq!(c.channel_binding, ChannelBindingMode::Prefer);
    assert_eq!(c.load_balance_hosts, LoadBalanceHosts::Disable);
    assert!(c.ssl_sni);
    // The same through the builder.
    let mut c = Config::new();
    c.target_session_attrs(TargetSessionAttrs::Any)
        .connect_timeout(Duration::from_secs(10));
    env::fill_from(&mut c, env::from_vars(vars).unwrap());
    assert_eq!(c.target_session_attrs, TargetSessionAttrs::Any);
    assert_eq!(c.connect_timeout, Some(Duration::from_secs(10)));
    // Left unset, the environment fills them.
    let mut c = parse("host=h");
    env::fill_from(&mut c, env::from_vars(vars).unwrap());
    assert_eq!(c.get_ssl_mode(), SslMode::Require);
    assert_eq!(c.target_session_attrs, TargetSessionAttrs::ReadWrite);
}

#[test]
fn an_environment_variable_for_an_unsupported_feature_is_refused_by_name() {
    let e = env::from_vars(|n| (n == "PGSERVICE").then(|| "prod".to_owned())).unwrap_err();
    assert!(e.to_string().contains("PGSERVICE"), "{e}");
    let e = env::from_vars(|n| (n == "PGSSLMODE").then(|| "bogus".to_owned())).unwrap_err();
    assert!(e.to_string().contains("PGSSLMODE"), "{e}");
}

#[test]
fn protocol_versions_are_3_0_by_default_and_3_2_on_request() {
    let c = Config::new();
    assert_eq!(
        (c.min_protocol_version, c.max_protocol_version),
        (ProtocolVersion::V3_0, ProtocolVersion::V3_0)
    );
    let c = parse("max_protocol_version=latest");
    assert_eq!(c.max_protocol_version, ProtocolVersion::V3_2);
    assert!(err("min_protocol_version=3.2").contains("max_protocol_version is below"));
    assert!(err("max_protocol_version=3.1").contains("max_protocol_version"));
}

#[test]
fn pooler_mode_with_a_statement_cache_is_refused_not_ignored() {
    let msg = err("postgres://u@h/db?pgbouncer=true&statement_cache_capacity=100");
    assert!(msg.contains("pooler mode"), "{msg}");
    let c = parse("postgres://u@h/db?statement_cache_capacity=100&pgbouncer=true");
    assert_eq!((c.pooler_mode, c.statement_cache_capacity), (true, 0));
    let mut c = parse("postgres://u@h/db?pgbouncer=true");
    c.statement_cache_capacity(8);
    assert!(c.validate().is_err());
    assert!(err("postgres://u@h/db?prepare_threshold=5").contains("prepare_threshold=5"));
}

#[test]
fn a_password_with_an_unencoded_slash_or_question_mark_stays_out_of_errors() {
    for url in [
        "postgres://me:se/cret@db/app",
        "postgres://me:se?cret@db/app",
    ] {
        let msg = err(url);
        assert!(!msg.contains("se") && !msg.contains("cret"), "{msg}");
    }
}

#[test]
fn a_zero_cancel_timeout_is_refused() {
    assert!(err("postgres://u@h/db?cancel_timeout=0").contains("cancel_timeout"));
}

#[test]
fn read_spin_defaults_to_50_us_and_read_spin_us_sets_or_refuses_it() {
    assert_eq!(Config::new().get_read_spin(), DEFAULT_READ_SPIN);
    assert_eq!(DEFAULT_READ_SPIN, Duration::from_micros(50));
    assert_eq!(
        parse("postgres://h/db?read_spin_us=0").get_read_spin(),
        Duration::ZERO
    );
    assert_eq!(
        parse("read_spin_us=120").get_read_spin(),
        Duration::from_micros(120)
    );
    for bad in ["read_spin_us=-1", "read_spin_us=soon", "read_spin_us="] {
        let msg = err(bad);
        assert!(msg.contains("read_spin_us"), "{bad}: {msg}");
    }
}
