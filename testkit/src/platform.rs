//! Every stand-in a platform needs, started together: authentik, Wiki.js, Frappe and Zammad.
//! Used by the demo (`platform-sim`) and by tests that run all twelve bundled services.

use crate::{
    AuthentikSim, FrappeHandle, FrappeSim, SimHandle, WikijsHandle, WikijsSim, ZammadHandle,
    ZammadSim,
};

pub struct PlatformSim {
    pub authentik: SimHandle,
    pub wikijs: WikijsHandle,
    pub frappe: FrappeHandle,
    pub zammad: ZammadHandle,
    frappe_key: String,
    frappe_secret: String,
    zammad_token: String,
}

fn random_token(prefix: &str) -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{hex}")
}

impl PlatformSim {
    /// Start all four on 127.0.0.1 (random ports); `token` is authentik's API token.
    pub async fn start(token: &str) -> PlatformSim {
        let frappe_key = random_token("frappe-key");
        let frappe_secret = random_token("frappe-secret");
        let zammad_token = random_token("zammad");
        PlatformSim {
            authentik: AuthentikSim::new(token).start().await,
            wikijs: WikijsSim::new().start().await,
            frappe: FrappeSim::new(&frappe_key, &frappe_secret).start().await,
            zammad: ZammadSim::new(&zammad_token).start().await,
            frappe_key,
            frappe_secret,
            zammad_token,
        }
    }

    /// The `.env` lines that point the bundled manifests at these stand-ins (URLs and the
    /// services' own credentials; not `AUTHENTIK_TOKEN` or `DOMAIN`).
    pub fn env_lines(&self) -> String {
        format!(
            "AUTHENTIK_URL={}\nWIKIJS_URL={}\nWIKIJS_ADMIN_EMAIL={}\nWIKIJS_ADMIN_PASSWORD={}\nERPNEXT_URL={}\nERPNEXT_API_KEY={}\nERPNEXT_API_SECRET={}\nZAMMAD_URL={}\nZAMMAD_API_TOKEN={}\n",
            self.authentik.base_url(),
            self.wikijs.base_url(),
            self.wikijs.admin_email(),
            self.wikijs.admin_password(),
            self.frappe.base_url(),
            self.frappe_key,
            self.frappe_secret,
            self.zammad.base_url(),
            self.zammad_token,
        )
    }
}
