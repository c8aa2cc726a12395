//! A progress line for long `check`/`fix-all` runs. Only on a terminal: it goes to stderr and is
//! shown only when stdout is a terminal too (and not `--json`), so piped output stays exactly the
//! result lines. It is rewritten in place and erased before the results print.

use std::io::IsTerminal;
use std::time::Duration;

use schemas::job::Action;
use sqlx::PgPool;
use uuid::Uuid;
use worker::pipeline::db;

/// Worth showing: more than one service, a person watching, lines not JSON.
pub fn enabled(json: bool, total: usize) -> bool {
    !json && total > 1 && std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

pub fn line(action: Action, done: usize, total: usize, current: Option<&str>) -> String {
    match current {
        Some(name) => format!("{action}: {done}/{total} done, {name} next"),
        None => format!("{action}: {done}/{total} done"),
    }
}

fn show(text: &str) {
    eprint!("\r\x1b[K{text}");
}

/// Inline runs call this before each service.
pub fn tick(enabled: bool, action: Action, done: usize, total: usize, current: &str) {
    if enabled {
        show(&line(action, done, total, Some(current)));
    }
}

pub fn clear(enabled: bool) {
    if enabled {
        show("");
    }
}

/// Queue runs: a task that counts finished jobs while the CLI waits for them.
pub struct Watch {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Watch {
    pub fn start(enabled: bool, pool: PgPool, ids: Vec<Uuid>, action: Action) -> Watch {
        if !enabled {
            return Watch { task: None };
        }
        let task = tokio::spawn(async move {
            loop {
                if let Ok(rows) = db::jobs(&pool, &ids).await {
                    let done = rows.iter().filter(|r| r.status.is_terminal()).count();
                    show(&line(action, done, ids.len(), None));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Watch { task: Some(task) }
    }

    pub fn finish(self) {
        if let Some(task) = self.task {
            task.abort();
            show("");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_counts_done_services_and_names_the_next() {
        assert_eq!(
            line(Action::Fix, 3, 12, Some("grafana")),
            "fix: 3/12 done, grafana next"
        );
        assert_eq!(line(Action::Check, 12, 12, None), "check: 12/12 done");
    }

    #[test]
    fn one_service_or_json_never_shows_progress() {
        assert!(!enabled(false, 1));
        assert!(!enabled(true, 12));
    }
}
