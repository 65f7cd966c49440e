//! The documentation names only settings that exist, documents all of them, and CI runs the
//! test command README gives.

use std::collections::BTreeSet;

fn env_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices("SEADRAGON_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        names.insert(name.trim_end_matches('_').to_owned());
    }
    names
}

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

async fn settings() -> BTreeSet<String> {
    let help = tokio::process::Command::new(env!("CARGO_BIN_EXE_seadragon"))
        .args(["serve", "--help"])
        .output()
        .await
        .unwrap();
    env_names(&String::from_utf8_lossy(&help.stdout))
}

#[tokio::test]
async fn readme_and_compose_name_only_real_settings_and_readme_lists_them_all() {
    let real = settings().await;
    assert!(real.contains("SEADRAGON_AGING_SECS"), "{real:?}");
    let readme = env_names(&read("README.md"));
    let compose = env_names(&read("compose.yaml"));
    // The test and soak scripts' own variables, which README explains next to them.
    let test_only = BTreeSet::from([
        "SEADRAGON_TEST_AMQP_URL".to_owned(),
        "SEADRAGON_TEST_DATABASE_URL".to_owned(),
        "SEADRAGON_TEST_LOG_DIR".to_owned(),
        "SEADRAGON_CLUSTER_DIR".to_owned(),
        "SEADRAGON_CLUSTER_URLS".to_owned(),
        "SEADRAGON_SOAK_JOBS".to_owned(),
    ]);
    for name in readme.union(&compose) {
        assert!(
            real.contains(name) || test_only.contains(name),
            "{name} is not a setting"
        );
    }
    for name in &real {
        assert!(readme.contains(name), "README does not document {name}");
    }
}

#[test]
fn ci_runs_the_test_command_of_the_readme() {
    let readme = read("README.md");
    let section = readme.split("## Test").nth(1).unwrap();
    let command = section
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap();
    assert!(
        // Bare, or as the last words of a line that runs it under a time limit.
        read(".ci/run").lines().any(|l| {
            let l = l.trim();
            l == command || l.ends_with(&format!(" {command}"))
        }),
        "{command}"
    );
}
