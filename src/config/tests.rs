//! Parsing and validation of the settings.

use super::*;

fn settings(args: &[&str]) -> Settings {
    let mut argv = vec!["seadragon", "serve"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Serve(s) | Command::Gateway(s) | Command::Worker(s) => s,
    }
}

#[test]
fn defaults_match_the_design_table() {
    let c = Config::from_settings(settings(&[])).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.ollama_url.as_str(), "http://127.0.0.1:11434/");
    assert_eq!(c.slots, 1);
    assert_eq!(c.default_starvation, Duration::from_secs(30));
    assert!((c.rescue_share - 0.1).abs() < f64::EPSILON);
    assert_eq!(c.slow_client, Duration::from_secs(30));
    assert_eq!(c.tiers.len(), 3);
    assert_eq!(c.top_tier().name, "enterprise");
}

#[test]
fn zero_slots_and_non_positive_aging_are_refused() {
    let e = Config::from_settings(settings(&["--slots", "0"])).unwrap_err();
    assert!(e.to_string().contains("SEADRAGON_SLOTS"), "{e}");
    let e = Config::from_settings(settings(&["--aging-secs", "0"])).unwrap_err();
    assert!(e.to_string().contains("SEADRAGON_AGING_SECS"), "{e}");
    let e = Config::from_settings(settings(&["--ollama-url", "ftp://x"])).unwrap_err();
    assert!(e.to_string().contains("SEADRAGON_OLLAMA_URL"), "{e}");
}

#[test]
fn toml_file_replaces_tiers_and_adds_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seadragon.toml");
    std::fs::write(
        &path,
        "[[tiers]]\nname = \"batch\"\npriority = 1\n\n[aliases]\n\"gpt-4o\" = \"default\"\n",
    )
    .unwrap();
    let c = Config::from_settings(settings(&["--config", path.to_str().unwrap()])).unwrap();
    assert_eq!(c.tiers.len(), 1);
    assert_eq!(c.tiers[0].requests_per_minute, 60);
    assert_eq!(c.aliases["gpt-4o"], "default");
}

#[test]
fn bad_tier_tables_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    for body in [
        "[[tiers]]\nname = \"x\"\npriority = 4\n",
        "[[tiers]]\nname = \"x\"\npriority = 1\n[[tiers]]\nname = \"x\"\npriority = 2\n",
        "[[tiers]]\nname = \"x\"\npriority = 1\ncolour = 3\n",
        "[[tiers]]\nname = \"x\"\npriority = 1\nmax_queued = 99999999999\n",
        "[[tiers]]\nname = \"x\"\npriority = 1\nmax_wait_secs = 0\n",
        "[[tiers]]\nname = \"x\"\npriority = 1\nstarvation_secs = -1.0\n",
        "[[tiers]]\nname = \"x\"\npriority = 1\nmax_num_ctx = 0\n",
    ] {
        std::fs::write(&path, body).unwrap();
        let r = Config::from_settings(settings(&["--config", path.to_str().unwrap()]));
        assert!(r.is_err(), "accepted {body:?}");
    }
}

#[test]
fn a_weak_bootstrap_admin_key_is_refused_without_repeating_it() {
    for weak in [
        "short",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "abababababababababababab12",
        "has space 0123456789abcdefgh",
    ] {
        let e = Config::from_settings(settings(&["--admin-key", weak])).unwrap_err();
        let message = e.to_string();
        assert!(message.contains("SEADRAGON_ADMIN_KEY"), "{message}");
        assert!(!message.contains(weak), "{message}");
    }
    let strong = "3f9a1c7e5b2d8f40a6c1e9b7d3f5a2c8";
    let c = Config::from_settings(settings(&["--admin-key", strong])).unwrap();
    assert_eq!(c.admin_key.as_deref(), Some(strong));
}

#[test]
fn one_thread_by_default_and_zero_threads_is_refused_at_parse_time() {
    assert_eq!(settings(&[]).threads, 1);
    assert_eq!(settings(&["--threads", "4"]).threads, 4);
    for bad in ["0", "many", "1025"] {
        let err = Cli::try_parse_from(["seadragon", "serve", "--threads", bad]).unwrap_err();
        assert!(err.to_string().contains("--threads"), "{bad}: {err}");
    }
}
