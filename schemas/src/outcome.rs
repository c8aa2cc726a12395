//! What a job found or did: stored as JSON in PostgreSQL, printed by the CLI. Secret-free by
//! construction: secret fields only ever say that they differ.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::manifest::SsoKind;

/// One difference between the manifest and the world.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// Dotted name of what differs, e.g. `provider.redirect_uris`, `env.GRAFANA_SSO_CLIENT_SECRET`.
    pub field: String,
    pub message: String,
    /// What `fix` would do about it.
    pub remedy: String,
}

impl Drift {
    pub fn new(
        field: impl Into<String>,
        message: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Drift {
        Drift {
            field: field.into(),
            message: message.into(),
            remedy: remedy.into(),
        }
    }
}

/// The result of checking one service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub service: String,
    pub kind: SsoKind,
    /// The green line's text when there is no drift.
    pub summary: String,
    pub drifts: Vec<Drift>,
    /// Worth knowing but not drift (the line stays green).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// authentik objects that belong to the service, as the check saw them (`application` →
    /// pk, `provider` → pk, `provider_model` → model): how a webhook about an object that has
    /// since been deleted is traced back to its service.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub objects: BTreeMap<String, String>,
    /// `verify` only: probes that could not be made, each with why (no outpost URL, no
    /// deliveries to read back, …). Without drift, a report with any is *unverified*, never
    /// green: nothing proved the login path works.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unverified: Vec<String>,
}

/// What a report says, in the three states an operator acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Everything compared (or every probe ran) and matched.
    Green,
    /// Something differs or a probe failed.
    Red,
    /// Nothing differs, but some probe could not be made.
    Unverified,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Green => "green",
            State::Red => "red",
            State::Unverified => "unverified",
        }
    }
}

impl Report {
    pub fn in_sync(&self) -> bool {
        self.drifts.is_empty()
    }

    pub fn state(&self) -> State {
        if !self.drifts.is_empty() {
            State::Red
        } else if !self.unverified.is_empty() {
            State::Unverified
        } else {
            State::Green
        }
    }

    /// What the line says after its `<mark> <svc> (<type>) — ` head: the summary, each drift's
    /// reason, or why the probes were not made. `--json` prints this as `summary`.
    pub fn reason(&self) -> String {
        match self.state() {
            State::Green => {
                let mut text = self.summary.clone();
                for warning in &self.warnings {
                    text.push_str(&format!(" (warning: {warning})"));
                }
                text
            }
            State::Red => {
                let reasons: Vec<&str> = self.drifts.iter().map(|d| d.message.as_str()).collect();
                reasons.join("; ")
            }
            State::Unverified => format!("not probed: {}", self.unverified.join("; ")),
        }
    }

    /// The seed's one-line format; `⚠` marks an unverified one.
    pub fn line(&self) -> String {
        let mark = match self.state() {
            State::Green => "✓",
            State::Red => "❌",
            State::Unverified => "⚠",
        };
        format!(
            "{mark} {} ({}) — {}",
            self.service,
            self.kind,
            self.reason()
        )
    }
}

/// `text` cut to at most `max` characters for a report line: on a character boundary, at the
/// last space before the limit when there is one (a command is not cut mid-word), and marked
/// with `…` when anything was left out.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    let cut = match cut.rfind(' ') {
        Some(at) if at > 0 => &cut[..at],
        _ => cut.as_str(),
    };
    format!("{}…", cut.trim_end())
}

/// What an add or fix changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Human-readable actions, e.g. `created provider pma-sso-grafana`.
    pub actions: Vec<String>,
    /// Compose services that must restart to pick up delivered settings.
    pub restart: Vec<String>,
}

impl Applied {
    pub fn did(&mut self, action: impl Into<String>) {
        self.actions.push(action.into());
    }

    pub fn restart(&mut self, services: impl IntoIterator<Item = String>) {
        for s in services {
            if !self.restart.contains(&s) {
                self.restart.push(s);
            }
        }
    }

    /// The line `add`/`fix` print for a service.
    pub fn line(&self, service: &str, kind: &str) -> String {
        if self.actions.is_empty() {
            format!("✓ {service} ({kind}) — already in sync, nothing written")
        } else {
            format!("✓ {service} ({kind}) — {}", self.actions.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_cuts_between_words_on_a_character_boundary_and_marks_the_cut() {
        assert_eq!(shorten("short", 10), "short");
        let command = r#"occ config:app:set sociallogin custom_providers --value={"p":1}"#;
        let shown = shorten(command, 60);
        assert_eq!(shown, "occ config:app:set sociallogin custom_providers…");
        assert!(shown.chars().count() <= 60);
        // No space to cut at: a character boundary, never inside a multi-byte character.
        assert_eq!(shorten("ééééééééé", 5), "éééé…");
    }

    #[test]
    fn an_unverified_report_is_neither_green_nor_red_and_its_line_says_why() {
        let mut report = Report {
            service: "kuma".into(),
            kind: SsoKind::Proxy,
            summary: "login path works".into(),
            drifts: Vec::new(),
            warnings: Vec::new(),
            objects: BTreeMap::new(),
            unverified: vec!["no outpost URL configured".into()],
        };
        assert_eq!(report.state(), State::Unverified);
        assert_eq!(
            report.line(),
            "⚠ kuma (proxy) — not probed: no outpost URL configured"
        );
        report.drifts.push(Drift::new("verify.x", "bad", "fix"));
        assert_eq!(report.state(), State::Red);
        assert_eq!(report.line(), "❌ kuma (proxy) — bad");
        assert_eq!(report.reason(), "bad");
    }
}
