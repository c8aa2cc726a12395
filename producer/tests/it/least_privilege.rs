//! `init --least-privilege` against the real authentik 2025.12 (skipped without
//! `PMA_SSO_REAL_AUTHENTIK`): pma-sso's commands work with the role's token, and writes outside
//! its scope are refused. Every object is this test's own (unique names) and is removed after.

use serde_json::{Value, json};

struct Run {
    what: String,
    code: i32,
    out: String,
}

/// A request with the least-privilege token; its status.
async fn as_pma_sso(
    url: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> u16 {
    reqwest::Client::new()
        .request(method, format!("{url}/api/v3/{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn with_the_least_privilege_token_every_command_works_and_writes_outside_its_scope_are_refused()
 {
    let Some(real) = testkit::RealAuthentik::from_env(
        "with_the_least_privilege_token_every_command_works_and_writes_outside_its_scope_are_refused",
    )
    .await
    else {
        return;
    };
    // Its applications are pma-sso's: the contract suite's `orphans --prune` must not see them.
    let _alone = real.exclusive().await;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let account = format!("pma-sso-19-lp-{tag}");
    let svc = format!("lp19-{tag}");
    let dir = tempfile::tempdir().expect("tmp");
    let pkg = dir.path().join("packages").join(&svc);
    std::fs::create_dir_all(&pkg).expect("mkdir");
    std::fs::write(
        pkg.join("manifest.yaml"),
        format!(
            "name: {svc}\nsso:\n  type: oauth\n  redirect_path: /oauth2callback\n  configured: false\n"
        ),
    )
    .expect("manifest");
    let env_path = dir.path().join(".env");
    std::fs::write(
        &env_path,
        format!(
            "DOMAIN=example.org\nAUTHENTIK_URL={}\nPMA_SSO_EXEC_RUNNER=true\n",
            real.url
        ),
    )
    .expect("env");
    let pma = |args: Vec<String>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pma-sso"));
        cmd.args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PMA_SSO_ENV_FILE", &env_path)
            .env("PMA_SSO_SERVICE_ACCOUNT", &account)
            .env("PMA_SSO_LOG", "error")
            .env("AUTHENTIK_ADMIN_TOKEN", &real.token);
        async move {
            let out = cmd.output().await.expect("pma-sso");
            let (code, out) = crate::cli::exit_and_text(&out);
            Run {
                what: args.join(" "),
                code,
                out,
            }
        }
    };
    let mut runs = vec![pma(vec!["init".into(), "--least-privilege".into()]).await];
    let token = worker::envfile::EnvFile::read(&env_path)
        .expect(".env")
        .get("AUTHENTIK_TOKEN")
        .unwrap_or_default()
        .to_owned();
    for args in [
        vec!["--inline", "add", &svc],
        vec!["--inline", "check", &svc],
        vec!["--inline", "fix", &svc],
        vec!["--inline", "check"],
        vec!["--inline", "orphans"],
        vec!["--inline", "doctor"],
    ] {
        runs.push(pma(args.into_iter().map(str::to_owned).collect()).await);
    }

    // doctor names a permission the role lacks (an error) and one it should not hold (a
    // warning).
    let role = producer::commands::init::role_name(&account);
    let (_, roles) = real
        .api(
            reqwest::Method::GET,
            &format!("rbac/roles/?search={}", urlencode(&role)),
            None,
        )
        .await;
    let role_pk = roles["results"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == role.as_str())
        .and_then(|r| r["pk"].as_str())
        .unwrap_or_default()
        .to_owned();
    real.api(
        reqwest::Method::PATCH,
        &format!("rbac/permissions/assigned_by_roles/{role_pk}/unassign/"),
        Some(json!({"permissions": ["authentik_flows.view_flow"]})),
    )
    .await;
    real.api(
        reqwest::Method::POST,
        &format!("rbac/permissions/assigned_by_roles/{role_pk}/assign/"),
        Some(json!({"permissions": ["authentik_brands.view_brand"]})),
    )
    .await;
    let drifted = pma(vec!["--inline".into(), "doctor".into()]).await;

    // Writes outside its scope, with its token.
    let (_, me) = real.api(reqwest::Method::GET, "core/users/me/", None).await;
    let admin_pk = me["user"]["pk"].clone();
    let (_, own) = real
        .api(
            reqwest::Method::GET,
            &format!("core/users/?username={account}"),
            None,
        )
        .await;
    let own_pk = own["results"][0]["pk"].as_i64();
    let own_superuser = own["results"][0]["is_superuser"].clone();
    let (_, admins) = real
        .api(
            reqwest::Method::GET,
            "core/groups/?search=authentik%20Admins",
            None,
        )
        .await;
    let admins_pk = admins["results"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["name"] == "authentik Admins")
        .and_then(|g| g["pk"].as_str())
        .unwrap_or_default()
        .to_owned();
    let flow_change = as_pma_sso(
        &real.url,
        &token,
        reqwest::Method::PATCH,
        "flows/instances/default-authentication-flow/",
        json!({"title": "changed by pma-sso"}),
    )
    .await;
    let foreign_token = as_pma_sso(
        &real.url,
        &token,
        reqwest::Method::POST,
        "core/tokens/",
        json!({"identifier": format!("lp19-{tag}-stolen"), "intent": "api", "user": admin_pk}),
    )
    .await;
    // authentik ignores `user` for a non-superuser and makes the token its own.
    let (_, stolen) = real
        .api(
            reqwest::Method::GET,
            &format!("core/tokens/lp19-{tag}-stolen/"),
            None,
        )
        .await;
    let join_admins = as_pma_sso(
        &real.url,
        &token,
        reqwest::Method::POST,
        &format!("core/groups/{admins_pk}/add_user/"),
        json!({"pk": own_pk}),
    )
    .await;
    let own_role = as_pma_sso(
        &real.url,
        &token,
        reqwest::Method::POST,
        "rbac/roles/",
        json!({"name": format!("lp19-{tag}-more")}),
    )
    .await;

    // Clean up what this test made before asserting anything.
    real.api(
        reqwest::Method::DELETE,
        &format!("core/applications/{svc}/"),
        None,
    )
    .await;
    let (_, providers) = real
        .api(
            reqwest::Method::GET,
            &format!("providers/all/?search=pma-sso-{svc}"),
            None,
        )
        .await;
    for p in providers["results"].as_array().into_iter().flatten() {
        if p["name"] == format!("pma-sso-{svc}").as_str() {
            real.api(
                reqwest::Method::DELETE,
                &format!("providers/all/{}/", p["pk"]),
                None,
            )
            .await;
        }
    }
    for r in roles["results"].as_array().into_iter().flatten() {
        if r["name"] == role.as_str() {
            real.api(
                reqwest::Method::DELETE,
                &format!("rbac/roles/{}/", r["pk"].as_str().unwrap_or_default()),
                None,
            )
            .await;
        }
    }
    real.api(
        reqwest::Method::DELETE,
        &format!("core/tokens/lp19-{tag}-stolen/"),
        None,
    )
    .await;
    if let Some(pk) = own_pk {
        real.api(reqwest::Method::DELETE, &format!("core/users/{pk}/"), None)
            .await;
    }

    let report: String = runs
        .iter()
        .map(|r| format!("$ pma-sso {} → {}\n{}", r.what, r.code, r.out))
        .collect();
    for r in &runs {
        let ok = match r.what.as_str() {
            // The real authentik has no outpost server; doctor may fail on that line only.
            "--inline doctor" => r.out.contains("✓ permissions — ") && !r.out.contains("❌ token"),
            // Others share this authentik: their objects may be listed, ours never.
            "--inline orphans" => r.code != 2 && !r.out.contains(&format!("application {svc} ")),
            _ => r.code == 0,
        };
        assert!(ok, "{report}");
    }
    assert!(runs[0].out.contains("created: role "), "{report}");
    assert_eq!(drifted.code, 2, "{}", drifted.out);
    assert!(
        drifted
            .out
            .contains("❌ permissions — the token's roles lack authentik_flows.view_flow"),
        "{}",
        drifted.out
    );
    assert!(
        drifted.out.contains(
            "⚠ permissions — the token's roles hold more than pma-sso needs: authentik_brands.view_brand"
        ),
        "{}",
        drifted.out
    );
    assert!(
        !report.contains(&real.token) && !report.contains(&token),
        "no secret"
    );
    assert_eq!(own_superuser, json!(false), "not a superuser");
    assert_eq!(flow_change, 403, "changing a flow is refused");
    assert!(
        matches!(foreign_token, 400 | 403)
            || (foreign_token == 201 && stolen["user"].as_i64() == own_pk),
        "an API token for another user is refused (or made for pma-sso's own account): \
         {foreign_token} {stolen}"
    );
    assert_ne!(stolen["user"], admin_pk, "never a token for the admin");
    assert!(
        join_admins == 403 || join_admins == 404,
        "joining the superuser group is refused: {join_admins}"
    );
    assert_eq!(own_role, 403, "creating a role is refused");
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
