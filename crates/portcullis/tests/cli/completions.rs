//! Shell completions: `portcullis completions bash|zsh|fish` prints a script the shell accepts,
//! naming the commands; an unknown shell is a usage error.

use super::*;

fn completions(shell: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tmp");
    portcullis(dir.path())
        .args(["completions", shell])
        .output()
        .expect("run")
}

#[test]
fn completion_scripts_name_the_commands_and_parse() {
    for (shell, marker) in [
        ("bash", "_portcullis()"),
        ("zsh", "#compdef portcullis"),
        ("fish", "complete -c portcullis"),
    ] {
        let out = completions(shell);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(
            script.contains("targets") && script.contains("breakglass"),
            "{shell}"
        );
    }
    // Bash itself reads the bash script without a syntax error.
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("portcullis.bash");
    std::fs::write(&file, completions("bash").stdout).expect("write");
    let checked = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("bash");
    assert!(checked.status.success(), "{}", stderr(&checked));
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = completions("tcsh");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid value 'tcsh'"),
        "{}",
        stderr(&out)
    );
}
