//! Tests of the kit against real throwaway clusters.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use crate::command::run_psql;
use crate::external::{External, external_url};
use crate::programs::Bins;
use crate::*;

/// A fresh local cluster, or None (with a message) when PGKEEL_TEST_URL is set.
fn local_cluster(builder: ClusterBuilder) -> Option<Cluster> {
    if external_url().is_some() {
        eprintln!("skipped: needs a throwaway cluster, but PGKEEL_TEST_URL is set");
        return None;
    }
    let started = Instant::now();
    let cluster = builder.start().unwrap_or_else(|err| panic!("{err}"));
    eprintln!("cluster started in {:?}", started.elapsed());
    Some(cluster)
}

/// Whether psql logs in over TCP with `url` and runs `select 1`.
fn tcp_login(url: &str) -> bool {
    let mut cmd = Command::new(Bins::find().unwrap().psql);
    cmd.args(["-d", url, "-w"]).env_remove("PGPASSWORD");
    run_psql(cmd, "select 1").is_ok_and(|out| out == "1")
}

#[test]
fn sql_databases_and_roles() {
    let Some(cluster) = local_cluster(ClusterBuilder::new()) else {
        return;
    };
    assert_eq!(cluster.psql("postgres", "select 1").unwrap(), "1");
    assert_eq!(cluster.host(), "127.0.0.1");
    assert_eq!(cluster.superuser(), "postgres");
    assert!(!cluster.is_external());
    let (a, b) = (cluster.create_database(), cluster.create_database());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a, b);
    let count = format!("select count(*) from pg_database where datname in ('{a}', '{b}')");
    assert_eq!(cluster.psql("postgres", &count).unwrap(), "2");
    assert_eq!(cluster.psql(&a, "select current_database()").unwrap(), a);
}

#[test]
fn roles_store_md5_or_scram_and_authenticate() {
    let Some(cluster) = local_cluster(ClusterBuilder::new()) else {
        return;
    };
    let methods = [
        ("r_trust", AuthMethod::Trust, "SCRAM-SHA-256$"),
        ("r_password", AuthMethod::Password, "SCRAM-SHA-256$"),
        ("r_md5", AuthMethod::Md5, "md5"),
        ("r_scram", AuthMethod::ScramSha256, "SCRAM-SHA-256$"),
    ];
    for (role, method, prefix) in methods {
        cluster.create_role(role, "pa ss'@:/%", method).unwrap();
        let sql = format!("select rolpassword from pg_authid where rolname = '{role}'");
        let secret = cluster.psql("postgres", &sql).unwrap();
        assert!(secret.starts_with(prefix), "{role}: {secret}");
        let good = cluster.url_for(role, Some("pa ss'@:/%"), "postgres");
        let bad = cluster.url_for(role, Some("wrong"), "postgres");
        assert!(tcp_login(&good), "{method:?} with the right password");
        let trusted = method == AuthMethod::Trust;
        assert_eq!(tcp_login(&bad), trusted, "{method:?}, wrong password");
    }
    let groups = "select string_agg(rolname, ',' order by rolname) from pg_roles \
                  where rolname like 'pgkeel_auth_%' and not rolcanlogin";
    assert_eq!(
        cluster.psql("postgres", groups).unwrap(),
        "pgkeel_auth_md5,pgkeel_auth_password,pgkeel_auth_scram"
    );
}

#[test]
fn restart_stop_start_and_drop() {
    let Some(cluster) = local_cluster(ClusterBuilder::new()) else {
        return;
    };
    let port = cluster.port();
    let pid = "select pg_backend_pid() > 0";
    cluster.restart().unwrap();
    assert_eq!(cluster.port(), port);
    assert_eq!(cluster.psql("postgres", pid).unwrap(), "t");
    assert!(TcpStream::connect((LOCALHOST, port)).is_ok());
    cluster.stop_server().unwrap();
    assert!(TcpStream::connect((LOCALHOST, port)).is_err());
    assert!(cluster.psql("postgres", "select 1").is_err());
    cluster.start_server().unwrap();
    assert_eq!(cluster.psql("postgres", pid).unwrap(), "t");
    let dir = cluster.socket_dir().unwrap().to_path_buf();
    assert!(dir.join("data").is_dir());
    drop(cluster);
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(TcpStream::connect((LOCALHOST, port)).is_err());
}

#[test]
fn builder_settings_reach_postgresql_conf() {
    let builder = ClusterBuilder::new()
        .max_connections(17)
        .setting("work_mem", "'8MB'")
        .setting("application_name", "'kit'");
    let Some(cluster) = local_cluster(builder) else {
        return;
    };
    let show = "show max_connections; show work_mem; show fsync; show listen_addresses";
    let out = cluster.psql("postgres", show).unwrap();
    assert_eq!(out, "17\n8MB\noff\n127.0.0.1");
    let dir = cluster.socket_dir().unwrap();
    assert!(dir.join(format!(".s.PGSQL.{}", cluster.port())).exists());
    let url = cluster.url("postgres", "postgres");
    assert_eq!(
        url,
        format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port())
    );
}

#[test]
fn test_db_on_the_shared_cluster() {
    let db = TestDb::new();
    let other = TestDb::new();
    assert_ne!(db.name(), other.name());
    assert!(std::ptr::eq(db.cluster(), Cluster::shared()));
    db.psql("create table t (id int); insert into t values (1), (2)")
        .unwrap();
    assert_eq!(db.psql("select sum(id) from t").unwrap(), "3");
    assert!(other.psql("select * from t").is_err());
    assert!(db.url().ends_with(&format!("/{}", db.name())));
    let url = db.url_as("u@x", "p:w/d");
    assert!(url.starts_with("postgres://u%40x:p%3Aw%2Fd@"), "{url}");
}

#[test]
fn test_dbs_in_parallel_get_distinct_names() {
    let threads: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(|| TestDb::new().name().to_string()))
        .collect();
    let mut names: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 8);
}

#[test]
fn throwaway_url_works() {
    if std::env::var_os("DATABASE_URL").is_some() {
        eprintln!("skipped: DATABASE_URL is set");
        return;
    }
    let (url, guard) = database_url_or_throwaway().unwrap();
    let cluster = guard.unwrap();
    assert!(tcp_login(&url) || cluster.is_external());
}

#[test]
fn external_mode_refuses_what_needs_a_local_cluster() {
    let url = "postgres://admin:se%3Acret@db.example:6543/main?sslmode=disable";
    let ext = External::with_psql(url, PathBuf::from("psql")).unwrap();
    let cluster = Cluster::from_external(ext);
    assert!(matches!(cluster.restart(), Err(TestkitError::External(_))));
    assert!(matches!(
        cluster.stop_server(),
        Err(TestkitError::External(_))
    ));
    let role = cluster.create_role("r", "p", AuthMethod::Md5);
    assert!(matches!(role, Err(TestkitError::External(_))));
    assert_eq!((cluster.host(), cluster.port()), ("db.example", 6543));
    assert_eq!(cluster.superuser(), "admin");
    assert_eq!(cluster.socket_dir(), None);
    assert_eq!(cluster.admin_db(), "main");
    let config: pgkeel::Config = cluster.url("admin", "x y").parse().unwrap();
    assert_eq!(
        (config.get_user(), config.get_dbname()),
        ("admin".into(), "x y".into())
    );
    assert!(!format!("{cluster:?}").contains("se%3Acret"));
}

#[test]
fn pgbouncer_runs_with_the_builders_settings_and_leaves_nothing_behind() {
    let Some(cluster) = local_cluster(ClusterBuilder::new()) else {
        return;
    };
    let builder = Pgbouncer::builder()
        .pool_mode(PoolMode::Statement)
        .default_pool_size(3)
        .max_client_conn(77);
    let Some(bouncer) = builder.start_or_skip(&cluster) else {
        return;
    };
    let admin = bouncer.url("postgres", "pgbouncer");
    let mut cmd = Command::new(Bins::find().unwrap().psql);
    cmd.args(["-d", &admin]);
    let config = run_psql(cmd, "SHOW CONFIG").unwrap();
    let value = |key: &str| {
        let line = config.lines().find(|l| l.starts_with(&format!("{key}|")));
        line.unwrap_or_else(|| panic!("no {key} in\n{config}"))
            .split('|')
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(value("pool_mode"), "statement");
    assert_eq!(value("default_pool_size"), "3");
    assert_eq!(value("max_client_conn"), "77");
    assert_eq!(value("listen_addr"), "127.0.0.1");
    assert_eq!(
        value("ignore_startup_parameters"),
        "extra_float_digits,options"
    );
    let db_url = bouncer.url("postgres", "postgres");
    assert!(tcp_login(&db_url), "a query through PgBouncer");
    let port = bouncer.port();
    let log = bouncer.log();
    assert!(
        log.contains(&format!("listening on 127.0.0.1:{port}")),
        "{log}"
    );
    drop(bouncer);
    assert!(TcpStream::connect((LOCALHOST, port)).is_err());
}
