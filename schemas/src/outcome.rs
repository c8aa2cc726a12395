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
}

impl Report {
    pub fn in_sync(&self) -> bool {
        self.drifts.is_empty()
    }

    /// The seed's one-line format.
    pub fn line(&self) -> String {
        if self.in_sync() {
            let mut line = format!("✓ {} ({}) — {}", self.service, self.kind, self.summary);
            for warning in &self.warnings {
                line.push_str(&format!(" (warning: {warning})"));
            }
            line
        } else {
            let reasons: Vec<&str> = self.drifts.iter().map(|d| d.message.as_str()).collect();
            format!(
                "❌ {} ({}) — {}",
                self.service,
                self.kind,
                reasons.join("; ")
            )
        }
    }
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
