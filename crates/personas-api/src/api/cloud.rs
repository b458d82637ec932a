//! The cloud operations: this data dir's connection to a Personas cloud (the orchestrator's URL
//! in the store, its bearer token sealed in the vault, never in settings or a plaintext file),
//! its status, pushing a persona with its credentials, running one there and listing the
//! cloud's runs. A run started here is mirrored into the local store as it goes
//! ([`super::mirror`]). The cloud is reached through `personas-cloud-api`'s [`CloudClient`]
//! only (HTTP and a WebSocket; no broker client in this crate).

use crate::Api;
use crate::error::{ApiError, Code};
use crate::ops::{
    CloudConnect, CloudDisconnected, CloudExecute, CloudExecutionList, CloudStatus, Empty,
    ExportPersona, FileSyntax, ListCloudExecutions, PushPersona, PushedPersona,
};
use personas_cloud_api::model::{self as cloud, PushedCredential, WireSecret};
use personas_cloud_api::{CloudClient, CloudError, CloudErrorCode};
use personas_core::{Execution, PersonaId, Secret};
use personas_engine::credentials::{self, CredentialError};
use personas_store::cloud::CloudConnection;

/// The error a cloud call turns into here: the cloud's code kept where the local API has the
/// same meaning; a refused token names the `token`, an unreachable orchestrator says so.
pub(crate) fn cloud_error(e: CloudError) -> ApiError {
    let code = match e.code {
        CloudErrorCode::Invalid | CloudErrorCode::PaymentRequired => Code::Invalid,
        CloudErrorCode::NotFound | CloudErrorCode::UnknownOperation => Code::NotFound,
        CloudErrorCode::Conflict => Code::Conflict,
        CloudErrorCode::TooLarge => Code::TooLarge,
        CloudErrorCode::Internal => Code::Internal,
        // Not the local runtime's token: the cloud refused ours. Reconnecting fixes it.
        CloudErrorCode::Unauthorized => {
            return ApiError {
                code: Code::Invalid,
                message: format!(
                    "the cloud refused the token ({}); connect again with a valid one \
                     (personas cloud connect URL --token T)",
                    e.message
                ),
                field: Some("token".into()),
            };
        }
        CloudErrorCode::RateLimited | CloudErrorCode::Unavailable => Code::Unavailable,
    };
    ApiError {
        code,
        message: format!("cloud: {}", e.message),
        field: e.field,
    }
}

fn not_connected() -> ApiError {
    ApiError::new(
        Code::Conflict,
        "not connected to a cloud; connect first (personas cloud connect URL --token T)",
    )
}

impl Api {
    pub async fn cloud_connect(&self, req: CloudConnect) -> Result<CloudStatus, ApiError> {
        let url = req.url.trim().trim_end_matches('/').to_string();
        let token = req.token.trim().to_string();
        if url.is_empty() {
            return Err(ApiError::invalid("url", "must be the orchestrator's URL"));
        }
        if token.is_empty() {
            return Err(ApiError::invalid("token", "must not be empty"));
        }
        let client = CloudClient::new(&url, &token).map_err(|e| match e.field {
            Some(_) => ApiError::invalid("url", e.message),
            None => cloud_error(e),
        })?;
        let identity = client.whoami(&cloud::Empty {}).await.map_err(|e| {
            if e.code == CloudErrorCode::Unavailable {
                ApiError {
                    code: Code::Unavailable,
                    message: format!("{}; check the URL", e.message),
                    field: Some("url".into()),
                }
            } else if e.code == CloudErrorCode::NotFound
                || e.code == CloudErrorCode::UnknownOperation
            {
                ApiError::invalid(
                    "url",
                    format!(
                        "{url} does not serve a Personas orchestrator ({})",
                        e.message
                    ),
                )
            } else {
                cloud_error(e)
            }
        })?;
        self.store_connection(url.clone(), Secret::new(token), identity.clone())
            .await?;
        self.resume_cloud_mirrors();
        Ok(self.status_of(client, url, Some(identity)).await)
    }

    /// Keeps the URL and who the token says we are in the store, the token sealed by the vault
    /// (created on first use, like for a credential).
    pub(crate) async fn store_connection(
        &self,
        url: String,
        token: Secret,
        identity: cloud::Identity,
    ) -> Result<(), ApiError> {
        self.with_vault(move |store, unlock| {
            let vault = unlock()?;
            let sealed = vault.seal_cloud_token(&token)?;
            store.cloud().connect(&CloudConnection {
                url: url.clone(),
                token: sealed,
                tenant_id: identity.tenant_id.clone(),
                subject: identity.subject.clone(),
                connected_at_ms: chrono::Utc::now().timestamp_millis(),
            })?;
            Ok(())
        })
        .await
    }

    pub async fn cloud_status(&self, _req: Empty) -> Result<CloudStatus, ApiError> {
        let Some(conn) = self.store(|s| s.cloud().connection()).await? else {
            return Ok(CloudStatus {
                connected: false,
                url: None,
                reachable: false,
                error: None,
                identity: None,
                cluster: None,
                usage: None,
                mirrors_pending: self.mirrors_pending().await?,
            });
        };
        match self.cloud_client().await {
            Ok(client) => Ok(self.status_of(client, conn.url, None).await),
            Err(e) => Ok(CloudStatus {
                connected: true,
                url: Some(conn.url),
                reachable: false,
                error: Some(e.message),
                identity: None,
                cluster: None,
                usage: None,
                mirrors_pending: self.mirrors_pending().await?,
            }),
        }
    }

    pub async fn cloud_disconnect(&self, _req: Empty) -> Result<CloudDisconnected, ApiError> {
        let before = self.store(|s| s.cloud().connection()).await?;
        self.store(|s| s.cloud().disconnect()).await?;
        Ok(CloudDisconnected {
            was_connected: before.is_some(),
            url: before.map(|c| c.url),
        })
    }

    pub async fn push_persona(&self, req: PushPersona) -> Result<PushedPersona, ApiError> {
        let persona = self.persona(req.persona.clone()).await?;
        let client = self.cloud_client().await?;
        let file = self
            .export_persona(ExportPersona {
                persona: persona.id.to_string(),
                syntax: Some(FileSyntax::Yaml),
            })
            .await?;
        let id = persona.id.clone();
        let credentials = self
            .with_vault(move |store, unlock| linked_credentials(store, &id, unlock))
            .await?;
        // A persona file carries no triggers: they go along as the runtime lists them.
        let triggers = self
            .list_triggers(crate::bus::ListTriggers {
                persona: Some(persona.id.to_string()),
            })
            .await?
            .triggers
            .into_iter()
            .map(|v| {
                let config = serde_json::to_value(&v.trigger.config).map_err(|e| {
                    ApiError::internal(format!("cannot encode a trigger's settings: {e}"))
                })?;
                Ok(cloud::PushedTrigger {
                    kind: v.trigger.kind.to_string(),
                    config,
                    enabled: v.trigger.enabled,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let pushed = client
            .push_persona(&cloud::PushPersona {
                text: file.text,
                id: Some(persona.id.clone()),
                credentials,
                triggers,
            })
            .await
            .map_err(cloud_error)?;
        Ok(PushedPersona {
            id: pushed.id.to_string(),
            name: pushed.name,
            credentials: pushed.credentials,
            triggers: pushed.triggers,
            revision: pushed.revision,
        })
    }

    pub async fn cloud_execute(&self, req: CloudExecute) -> Result<Execution, ApiError> {
        let persona = self.cloud_persona_ref(req.persona).await?;
        let client = self.cloud_client().await?;
        let started = client
            .execute(&cloud::Execute {
                persona,
                input: req.input,
                idempotency_key: None,
            })
            .await
            .map_err(cloud_error)?;
        let url = client.url().to_string();
        let exec = started.execution;
        let stored = self
            .store(move |s| s.cloud().insert_mirror(&exec, &url))
            .await?;
        self.engine()
            .bus()
            .send(personas_engine::EngineEvent::execution(&stored));
        self.follow_mirror(client, stored.id.clone(), 0);
        Ok(stored)
    }

    pub async fn list_cloud_executions(
        &self,
        req: ListCloudExecutions,
    ) -> Result<CloudExecutionList, ApiError> {
        let persona = match req.persona {
            Some(p) => Some(self.cloud_persona_ref(p).await?),
            None => None,
        };
        let client = self.cloud_client().await?;
        client
            .list_executions(&cloud::ListExecutions {
                persona,
                status: req.status,
                limit: req.limit,
            })
            .await
            .map_err(cloud_error)
    }

    /// Cancels a mirrored run in the cloud (its worker stops the CLI); the mirror follows.
    pub(crate) async fn cancel_cloud_execution(&self, e: Execution) -> Result<Execution, ApiError> {
        if e.status.is_terminal() {
            return Err(ApiError::new(
                Code::Conflict,
                format!("{} already ended ({})", e.id, e.status),
            ));
        }
        let client = self.cloud_client().await?;
        let answer = client
            .cancel_execution(&cloud::ExecutionRef { id: e.id.clone() })
            .await
            .map_err(cloud_error)?;
        let record = answer.execution;
        let stored = self.store(move |s| s.cloud().apply(&record)).await?;
        match stored {
            Some(stored) => {
                self.engine()
                    .bus()
                    .send(personas_engine::EngineEvent::execution(&stored));
                Ok(stored)
            }
            None => Ok(e),
        }
    }

    /// A client for the stored connection, its token opened from the vault.
    pub(crate) async fn cloud_client(&self) -> Result<CloudClient, ApiError> {
        let conn = self
            .store(|s| s.cloud().connection())
            .await?
            .ok_or_else(not_connected)?;
        let sealed = conn.token.clone();
        let token = self
            // A key rotated by another process since is `Stale`: `with_vault` unlocks again.
            .with_vault(move |_, unlock| Ok(unlock()?.open_cloud_token(&sealed)?))
            .await?;
        CloudClient::new(&conn.url, token.expose()).map_err(cloud_error)
    }

    /// The cloud knows a persona pushed from here by its local id; a name not known here is
    /// passed on (it may have been pushed from another machine).
    async fn cloud_persona_ref(&self, persona: String) -> Result<String, ApiError> {
        match self.persona(persona.clone()).await {
            Ok(p) => Ok(p.id.to_string()),
            Err(e) if e.code == Code::NotFound => Ok(persona),
            Err(e) => Err(e),
        }
    }

    async fn mirrors_pending(&self) -> Result<u32, ApiError> {
        let n = self.store(|s| s.cloud().pending()).await?.len();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Asks the orchestrator who we are, the cluster and this month's usage, at once. An
    /// orchestrator that does not answer makes a status saying so, not an error.
    async fn status_of(
        &self,
        client: CloudClient,
        url: String,
        identity: Option<cloud::Identity>,
    ) -> CloudStatus {
        let whoami = async {
            match identity {
                Some(i) => Ok(i),
                None => client.whoami(&cloud::Empty {}).await,
            }
        };
        let (empty, month) = (cloud::Empty {}, cloud::UsageRequest::default());
        let (who, cluster, usage) =
            tokio::join!(whoami, client.get_cluster(&empty), client.get_usage(&month));
        let error = [
            who.as_ref().err(),
            cluster.as_ref().err(),
            usage.as_ref().err(),
        ]
        .into_iter()
        .flatten()
        .next()
        .map(|e| cloud_error(e.clone()).message);
        CloudStatus {
            connected: true,
            url: Some(url),
            reachable: who.is_ok(),
            error,
            identity: who.ok(),
            cluster: cluster.ok(),
            usage: usage.ok(),
            mirrors_pending: self.mirrors_pending().await.unwrap_or(0),
        }
    }
}

/// The persona's linked credentials with their values opened, for the push (TLS to the
/// orchestrator, which seals them on arrival). Without links the vault is not touched.
fn linked_credentials(
    store: &personas_store::Store,
    persona: &PersonaId,
    unlock: credentials::Unlock<'_>,
) -> Result<Vec<PushedCredential>, CredentialError> {
    let rows = store.credentials().of_persona(persona)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let vault = unlock()?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let opened = credentials::open(&vault, store, row)?;
        out.push(PushedCredential {
            name: opened.row.name.clone(),
            service_type: opened.row.kind.clone(),
            fields: opened
                .values
                .iter()
                .map(|(k, v)| (k.clone(), WireSecret::new(v.expose())))
                .collect(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostInfo;
    use personas_engine::EngineConfig;
    use personas_engine::vault::VaultOptions;
    use personas_testkit::leak::{Needle, in_database, in_files};

    const PASSPHRASE: &str = "correct horse battery staple 42";

    fn api(dir: &std::path::Path) -> Api {
        let config = EngineConfig::load(dir, |_| None).expect("config");
        let vault = VaultOptions {
            passphrase: Some(Secret::new(PASSPHRASE)),
            new_passphrase: None,
            keychain: None,
        };
        Api::open(config, vault, HostInfo::default()).expect("api")
    }

    /// A loopback address nothing listens on (bound, then released).
    fn dead_url() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        format!("http://127.0.0.1:{port}")
    }

    fn identity() -> cloud::Identity {
        cloud::Identity {
            tenant_id: "t-1".into(),
            subject: "admin".into(),
            via: cloud::AuthKind::AdminToken,
            orchestrator_id: "o-1".into(),
        }
    }

    #[tokio::test]
    async fn a_bad_url_an_empty_token_or_an_unreachable_orchestrator_is_refused_storing_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let api = api(dir.path());
        let connect = |url: &str, token: &str| {
            api.cloud_connect(CloudConnect {
                url: url.into(),
                token: token.into(),
            })
        };
        let e = connect("ftp://example.org", "t0ken-value")
            .await
            .expect_err("ftp");
        assert_eq!((e.code, e.field.as_deref()), (Code::Invalid, Some("url")));
        assert!(e.message.contains("ftp://example.org"), "{}", e.message);
        let e = connect("http://127.0.0.1:9", "  ")
            .await
            .expect_err("no token");
        assert_eq!((e.code, e.field.as_deref()), (Code::Invalid, Some("token")));
        let url = dead_url();
        let e = connect(&url, "t0ken-value").await.expect_err("unreachable");
        assert_eq!(
            (e.code, e.field.as_deref()),
            (Code::Unavailable, Some("url"))
        );
        assert!(e.message.contains(&url), "{}", e.message);
        let status = api.cloud_status(Empty {}).await.expect("status");
        assert!(!status.connected && !status.reachable && status.url.is_none());
        assert!(
            api.store(|s| s.cloud().connection())
                .await
                .expect("read")
                .is_none()
        );
        // What needs a connection says how to make one.
        let e = api
            .list_cloud_executions(ListCloudExecutions::default())
            .await
            .expect_err("not connected");
        assert_eq!(e.code, Code::Conflict);
        assert!(
            e.message.contains("personas cloud connect"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn the_token_is_sealed_in_the_vault_and_nowhere_in_plaintext() {
        let dir = tempfile::tempdir().expect("dir");
        let api = api(dir.path());
        let token = "pc-admin-7f3a9c1e5b2d4f6a8c0e";
        let url = dead_url();
        api.store_connection(url.clone(), Secret::new(token), identity())
            .await
            .expect("stored");
        // It opens again through the vault, for the URL stored beside it.
        let client = api.cloud_client().await.expect("client");
        assert_eq!(client.url(), url);
        let sealed = api
            .store(|s| s.cloud().connection())
            .await
            .expect("read")
            .expect("connected")
            .token;
        let opened = api
            .with_vault(move |_, unlock| Ok(unlock()?.open_cloud_token(&sealed)?))
            .await
            .expect("opens");
        assert_eq!(opened.expose(), token);
        // A key rotation re-seals it with everything else: it still opens afterwards.
        api.rotate_vault(crate::ops::RotateVault::default())
            .await
            .expect("rotate");
        let after = api
            .store(|s| s.cloud().connection())
            .await
            .expect("read")
            .expect("connected")
            .token;
        assert_eq!(after.generation, 2);
        let opened = api
            .with_vault(move |_, unlock| Ok(unlock()?.open_cloud_token(&after)?))
            .await
            .expect("opens after the rotation");
        assert_eq!(opened.expose(), token);
        // Nowhere in plaintext: no column of any table, no file of the data dir (config.toml
        // included), in any encoding.
        let needles = [Needle::new("cloud token", token)];
        let (hits, values) = in_database(&needles, &dir.path().join(personas_store::DB_FILE));
        assert!(hits.is_empty(), "{hits:#?}");
        assert!(values > 0);
        let hits = in_files(&needles, dir.path());
        assert!(hits.is_empty(), "{hits:#?}");
        // The orchestrator does not answer: a status saying so, not a failure.
        let status = api.cloud_status(Empty {}).await.expect("status");
        assert!(status.connected && !status.reachable);
        assert_eq!(status.url.as_deref(), Some(url.as_str()));
        let error = status.error.expect("why");
        assert!(error.contains("cannot reach the orchestrator"), "{error}");
        let gone = api.cloud_disconnect(Empty {}).await.expect("disconnect");
        assert!(gone.was_connected);
        assert!(
            api.store(|s| s.cloud().connection())
                .await
                .expect("read")
                .is_none()
        );
        let again = api.cloud_disconnect(Empty {}).await.expect("disconnect");
        assert!(!again.was_connected);
    }
}
