//! Every line `copyguard demo` tells a newcomer to type works as typed
//! from the checkout: the psql lines (and each statement under them, with
//! the outcome its comment announces), the `explain` and `audit` commands,
//! and the metrics line.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `line` with `sh -c` from the repository root, `stdin` as input.
fn shell(line: &str, stdin: &str) -> Output {
    let mut child = Command::new("sh")
        .args(["-c", line])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sh");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait for sh")
}

fn describe(line: &str, out: &Output) -> String {
    format!(
        "{line}\n  status {:?}\n  stdout {}\n  stderr {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
            .chars()
            .take(600)
            .collect::<String>(),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `line` (which does not end by itself) until it prints a line.
fn first_line(line: &str) -> Result<(), String> {
    use std::io::BufRead;
    let mut child = Command::new("sh")
        .args(["-c", &format!("exec {line}")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run sh");
    let mut first = String::new();
    let read = std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first);
    let _ = child.kill();
    let _ = child.wait();
    match read {
        Ok(n) if n > 0 => Ok(()),
        other => Err(format!("{line}\n  printed nothing: {other:?}")),
    }
}

/// Checks every command line of the demo's instructions, `printed`.
pub fn check_printed_lines(printed: &str) {
    let mut problems = Vec::new();
    let mut psql: Option<String> = None;
    let mut lines = printed.lines().peekable();
    let mut commands = 0;
    while let Some(line) = lines.next() {
        if line.starts_with("Take a sanctioned") {
            // The dump walk-through runs as a whole, in order, in
            // `lifecycle::demo_dump_walkthrough`.
            for next in lines.by_ref() {
                if next.trim().is_empty() {
                    break;
                }
            }
            psql = None;
            continue;
        }
        if line.trim().is_empty() {
            psql = None;
            continue;
        }
        let Some(cmd) = line.strip_prefix("  ").filter(|l| !l.starts_with(' ')) else {
            // A statement to type into the psql line above.
            if let (Some(session), Some(sql)) = (&psql, line.strip_prefix("    ")) {
                commands += 1;
                let refused = sql.contains("-- blocked") || sql.contains("-- stopped");
                let out = shell(
                    &format!("{session} -X -v ON_ERROR_STOP=1"),
                    &format!("{sql}\n"),
                );
                let stderr = String::from_utf8_lossy(&out.stderr);
                let ok = if refused {
                    !out.status.success() && stderr.contains("copyguard: blocked by rule")
                } else {
                    out.status.success() && stderr.is_empty()
                };
                if !ok {
                    problems.push(describe(sql, &out));
                }
            }
            continue;
        };
        let mut cmd = cmd.to_owned();
        while cmd.ends_with('\\') {
            let Some(next) = lines.next() else { break };
            cmd.push('\n');
            cmd.push_str(next);
        }
        if cmd.starts_with("PGPASSWORD=") {
            commands += 1;
            let out = shell(&cmd, "SELECT 1;\n");
            if !out.status.success() {
                problems.push(describe(&cmd, &out));
            }
            psql = Some(cmd);
        } else if cmd.contains(" audit tail ") {
            // Follows the log until interrupted: its first records suffice.
            commands += 1;
            if let Err(problem) = first_line(&cmd) {
                problems.push(problem);
            }
        } else if cmd.starts_with('/') || cmd.starts_with('\'') || cmd.starts_with("curl ") {
            commands += 1;
            let out = shell(&cmd, "");
            if !out.status.success() || out.stdout.is_empty() {
                problems.push(describe(&cmd, &out));
            }
        }
    }
    assert!(commands >= 20, "only {commands} lines checked:\n{printed}");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
