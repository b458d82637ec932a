//! Settings of both modes, in layers: command-line flags, then `PERSONAS_CLOUD_*` environment
//! variables, then the TOML file given by `--config` (keys named like the flags, with `_` for
//! `-`), then the defaults below. Secrets (the deployment secret, the master key, the admin
//! token) are best passed by environment or file, never by flag on a shared machine.

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

#[derive(Debug, Parser)]
#[command(
    name = "personas-cloud",
    version,
    about = "The Personas cloud runtime: orchestrators and workers on Kafka and Postgres",
    long_about = "The Personas cloud runtime. One binary, two modes:\n\n  personas-cloud orchestrator   HTTP API, client stream, worker pool, Kafka, Postgres\n  personas-cloud worker         runs executions on the Claude CLI for an orchestrator\n\nEvery setting is a flag, a PERSONAS_CLOUD_* environment variable, or a key of the TOML file given by --config (flags win over the environment, the environment over the file)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(Debug, Subcommand)]
// Parsed once at start; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Mode {
    /// Serve the HTTP API and the worker pool; consume the execution topic.
    Orchestrator(OrchestratorArgs),
    /// Connect to an orchestrator and run the executions it assigns.
    Worker(WorkerArgs),
}

/// A secret setting: zeroed when dropped, never shown by `Debug`.
#[derive(Clone)]
pub struct SecretSetting(pub Zeroizing<String>);

impl std::fmt::Debug for SecretSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl SecretSetting {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn secret(v: Option<String>) -> Option<SecretSetting> {
    v.filter(|s| !s.is_empty())
        .map(|s| SecretSetting(Zeroizing::new(s)))
}

/// Decodes a 32-byte key given as 64 hex digits.
pub fn parse_key(name: &str, value: &str) -> anyhow::Result<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(
        hex::decode(value.trim())
            .with_context(|| format!("{name} must be 64 hex digits (32 bytes)"))?,
    );
    if bytes.len() != 32 {
        bail!(
            "{name} must be 64 hex digits (32 bytes), got {} bytes",
            bytes.len()
        );
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&bytes);
    Ok(key)
}

fn read_file<T: for<'de> Deserialize<'de> + Default>(path: Option<&Path>) -> anyhow::Result<T> {
    let Some(path) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("the config file {} is invalid", path.display()))
}

/// The orchestrator's settings as flags and environment, and — the same struct read from the
/// `--config` file — as that file's keys.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrchestratorArgs {
    /// A TOML file with any of these settings.
    #[arg(long, env = "PERSONAS_CLOUD_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to serve HTTP (API, client stream, worker pool) on [default: 127.0.0.1:9500].
    #[arg(long, env = "PERSONAS_CLOUD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// This orchestrator's id, unique in the deployment [default: orch-<random>].
    #[arg(long, env = "PERSONAS_CLOUD_ID")]
    pub id: Option<String>,
    /// The URL clients and workers reach this orchestrator at [default: http://<listen>].
    #[arg(long, env = "PERSONAS_CLOUD_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// Postgres connection string (`postgres://user@host:port/db`).
    #[arg(long, env = "PERSONAS_CLOUD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Most Postgres connections this orchestrator holds [default: 16].
    #[arg(long, env = "PERSONAS_CLOUD_DATABASE_POOL")]
    pub database_pool: Option<usize>,
    /// Kafka bootstrap servers (`host:port,…`): any Kafka-protocol service.
    #[arg(long, env = "PERSONAS_CLOUD_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Prefix of this deployment's topic names [default: personas].
    #[arg(long, env = "PERSONAS_CLOUD_KAFKA_NAMESPACE")]
    pub kafka_namespace: Option<String>,
    /// Extra librdkafka properties (`security.protocol=SASL_SSL`, …), repeatable; in the file a
    /// table `kafka_properties`.
    #[arg(long = "kafka-property", value_name = "KEY=VALUE")]
    #[serde(skip)]
    pub kafka_property: Vec<String>,
    /// The file's form of `--kafka-property`.
    #[arg(skip)]
    pub kafka_properties: std::collections::BTreeMap<String, String>,
    /// Partitions of each topic this orchestrator creates when missing [default: 6].
    #[arg(long, env = "PERSONAS_CLOUD_KAFKA_PARTITIONS")]
    pub kafka_partitions: Option<i32>,
    /// The secret workers' tokens derive from (any length; 32+ random bytes recommended).
    #[arg(long, env = "PERSONAS_CLOUD_DEPLOYMENT_SECRET", hide_env_values = true)]
    pub deployment_secret: Option<String>,
    /// The key credentials are sealed with: 64 hex digits. Shared with the workers.
    #[arg(long, env = "PERSONAS_CLOUD_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// A static bearer token with the rights of the `admin` tenant (self-hosting).
    #[arg(long, env = "PERSONAS_CLOUD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// JWKS URL of the JWT issuer (the portal's `/.well-known/jwks.json`, or Supabase's).
    #[arg(long, env = "PERSONAS_CLOUD_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,
    /// Shared HS256 secret (Supabase projects that still sign with one).
    #[arg(long, env = "PERSONAS_CLOUD_JWT_HS256_SECRET", hide_env_values = true)]
    pub jwt_hs256_secret: Option<String>,
    /// Required `iss` of JWTs.
    #[arg(long, env = "PERSONAS_CLOUD_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` of JWTs.
    #[arg(long, env = "PERSONAS_CLOUD_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Accepted algorithms, comma-separated, from ES256, RS256, HS256 [default: ES256,RS256
    /// with a JWKS URL, HS256 with a shared secret].
    #[arg(long, env = "PERSONAS_CLOUD_JWT_ALGORITHMS")]
    pub jwt_algorithms: Option<String>,
    /// Attempts per execution before it is dead-lettered [default: 3].
    #[arg(long, env = "PERSONAS_CLOUD_MAX_ATTEMPTS")]
    pub max_attempts: Option<u32>,
    /// A worker silent for this long is gone and its runs re-queued [default: 5000].
    #[arg(long, env = "PERSONAS_CLOUD_WORKER_TIMEOUT_MS")]
    pub worker_timeout_ms: Option<u64>,
}

/// How JWTs are verified.
#[derive(Debug, Clone, Default)]
pub struct JwtSettings {
    pub jwks_url: Option<String>,
    pub hs256_secret: Option<SecretSetting>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Upper-case names (`ES256`, `RS256`, `HS256`).
    pub algorithms: Vec<String>,
}

/// The orchestrator's resolved settings.
#[derive(Debug, Clone)]
pub struct OrchestratorSettings {
    pub listen: SocketAddr,
    pub id: String,
    pub advertise_url: String,
    pub database_url: String,
    pub database_pool: usize,
    pub kafka_brokers: String,
    pub kafka_namespace: String,
    pub kafka_properties: Vec<(String, String)>,
    pub kafka_partitions: i32,
    pub deployment_secret: SecretSetting,
    pub master_key: Zeroizing<[u8; 32]>,
    pub admin_token: Option<SecretSetting>,
    pub jwt: JwtSettings,
    pub max_attempts: u32,
    pub worker_timeout_ms: u64,
}

pub fn random_suffix() -> String {
    let mut b = [0u8; 4];
    // A suffix for a default id; all zeros if the OS has no randomness (it always has).
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

impl OrchestratorArgs {
    pub fn resolve(self) -> anyhow::Result<OrchestratorSettings> {
        let file: OrchestratorArgs = read_file(self.config.as_deref())?;
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9500)));
        let database_url = self
            .database_url
            .or(file.database_url)
            .context("no Postgres: pass --database-url or set PERSONAS_CLOUD_DATABASE_URL")?;
        let kafka_brokers = self
            .kafka_brokers
            .or(file.kafka_brokers)
            .context("no Kafka: pass --kafka-brokers or set PERSONAS_CLOUD_KAFKA_BROKERS")?;
        let kafka_namespace = self
            .kafka_namespace
            .or(file.kafka_namespace)
            .unwrap_or_else(|| "personas".into());
        if !personas_cloud_api::topics::valid_namespace(&kafka_namespace) {
            bail!(
                "--kafka-namespace {kafka_namespace:?} may hold only letters, digits, '.', '_' and '-'"
            );
        }
        let mut kafka_properties: Vec<(String, String)> =
            file.kafka_properties.into_iter().collect();
        for p in self.kafka_property {
            let (k, v) = p
                .split_once('=')
                .with_context(|| format!("--kafka-property {p:?} is not KEY=VALUE"))?;
            kafka_properties.retain(|(key, _)| key != k);
            kafka_properties.push((k.to_string(), v.to_string()));
        }
        let deployment_secret = secret(self.deployment_secret.or(file.deployment_secret)).context(
            "no deployment secret: set PERSONAS_CLOUD_DEPLOYMENT_SECRET (workers' tokens derive from it)",
        )?;
        let master_key = parse_key(
            "the master key (PERSONAS_CLOUD_MASTER_KEY)",
            secret(self.master_key.or(file.master_key))
                .context("no master key: set PERSONAS_CLOUD_MASTER_KEY to 64 hex digits")?
                .expose(),
        )?;
        let jwt_hs256_secret = secret(self.jwt_hs256_secret.or(file.jwt_hs256_secret));
        let jwt_jwks_url = self.jwt_jwks_url.or(file.jwt_jwks_url);
        let algorithms = match self.jwt_algorithms.or(file.jwt_algorithms) {
            Some(list) => {
                let algs: Vec<String> = list
                    .split(',')
                    .map(|a| a.trim().to_ascii_uppercase())
                    .filter(|a| !a.is_empty())
                    .collect();
                for a in &algs {
                    if !matches!(a.as_str(), "ES256" | "RS256" | "HS256") {
                        bail!("--jwt-algorithms: {a:?} is not one of ES256, RS256, HS256");
                    }
                }
                algs
            }
            None => {
                let mut algs = Vec::new();
                if jwt_jwks_url.is_some() {
                    algs.extend(["ES256".to_string(), "RS256".to_string()]);
                }
                if jwt_hs256_secret.is_some() {
                    algs.push("HS256".into());
                }
                algs
            }
        };
        for alg in &algorithms {
            match alg.as_str() {
                "ES256" | "RS256" if jwt_jwks_url.is_none() => {
                    bail!("--jwt-algorithms names {alg} but no --jwt-jwks-url gives its keys")
                }
                "HS256" if jwt_hs256_secret.is_none() => {
                    bail!("--jwt-algorithms names HS256 but no --jwt-hs256-secret is set")
                }
                _ => {}
            }
        }
        let id = self
            .id
            .or(file.id)
            .unwrap_or_else(|| format!("orch-{}", random_suffix()));
        let advertise_url = self
            .advertise_url
            .or(file.advertise_url)
            .unwrap_or_else(|| format!("http://{listen}"));
        Ok(OrchestratorSettings {
            listen,
            id,
            advertise_url,
            database_url,
            database_pool: self.database_pool.or(file.database_pool).unwrap_or(16),
            kafka_brokers,
            kafka_namespace,
            kafka_properties,
            kafka_partitions: self.kafka_partitions.or(file.kafka_partitions).unwrap_or(6),
            deployment_secret,
            master_key,
            admin_token: secret(self.admin_token.or(file.admin_token)),
            jwt: JwtSettings {
                jwks_url: jwt_jwks_url,
                hs256_secret: jwt_hs256_secret,
                issuer: self.jwt_issuer.or(file.jwt_issuer),
                audience: self.jwt_audience.or(file.jwt_audience),
                algorithms,
            },
            max_attempts: self.max_attempts.or(file.max_attempts).unwrap_or(3).max(1),
            worker_timeout_ms: self
                .worker_timeout_ms
                .or(file.worker_timeout_ms)
                .unwrap_or(personas_cloud_api::wire::PEER_TIMEOUT_MS),
        })
    }
}

/// The worker's settings as flags and environment, and — the same struct read from the
/// `--config` file — as that file's keys.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerArgs {
    /// A TOML file with any of these settings.
    #[arg(long, env = "PERSONAS_CLOUD_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Orchestrator URL(s), comma-separated or repeated; the worker connects to one and moves
    /// to the next when it goes away.
    #[arg(
        long = "orchestrator",
        env = "PERSONAS_CLOUD_ORCHESTRATORS",
        value_delimiter = ','
    )]
    pub orchestrators: Vec<String>,
    /// This worker's id, unique in the deployment [default: worker-<random>].
    #[arg(long, env = "PERSONAS_CLOUD_WORKER_ID")]
    pub id: Option<String>,
    /// This worker's token (64 hex digits, derived from the deployment secret for its id).
    #[arg(long, env = "PERSONAS_CLOUD_WORKER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Or the deployment secret itself, to derive the token (self-hosting).
    #[arg(long, env = "PERSONAS_CLOUD_DEPLOYMENT_SECRET", hide_env_values = true)]
    pub deployment_secret: Option<String>,
    /// The key credentials are sealed with: 64 hex digits (the orchestrators' key).
    #[arg(long, env = "PERSONAS_CLOUD_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// Runs held at once [default: 1; one run per worker keeps tenants' secrets apart].
    #[arg(long, env = "PERSONAS_CLOUD_CAPACITY")]
    pub capacity: Option<u32>,
    /// Scratch directory for the runs' working directories and the runner's store [default: a
    /// fresh directory under the system's temp dir, removed on exit].
    #[arg(long, env = "PERSONAS_CLOUD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The Claude CLI to run [default: found like the desktop finds it].
    #[arg(long, env = "PERSONAS_CLOUD_CLAUDE_PATH")]
    pub claude_path: Option<PathBuf>,
}

/// The worker's resolved settings.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub orchestrators: Vec<String>,
    pub id: String,
    pub token: Zeroizing<[u8; 32]>,
    pub master_key: Zeroizing<[u8; 32]>,
    pub capacity: u32,
    pub data_dir: Option<PathBuf>,
    pub claude_path: Option<PathBuf>,
}

impl WorkerArgs {
    pub fn resolve(self) -> anyhow::Result<WorkerSettings> {
        let file: WorkerArgs = read_file(self.config.as_deref())?;
        let orchestrators = if self.orchestrators.is_empty() {
            file.orchestrators
        } else {
            self.orchestrators
        };
        if orchestrators.is_empty() {
            bail!("no orchestrator: pass --orchestrator URL or set PERSONAS_CLOUD_ORCHESTRATORS");
        }
        for url in &orchestrators {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("--orchestrator {url:?} is not an http:// or https:// URL");
            }
        }
        let id = self
            .id
            .or(file.id)
            .unwrap_or_else(|| format!("worker-{}", random_suffix()));
        let token = match (
            secret(self.token.or(file.token)),
            secret(self.deployment_secret.or(file.deployment_secret)),
        ) {
            (Some(t), _) => {
                parse_key("the worker token (PERSONAS_CLOUD_WORKER_TOKEN)", t.expose())?
            }
            (None, Some(s)) => Zeroizing::new(personas_cloud_api::wire::worker_token(
                s.expose().as_bytes(),
                &id,
            )),
            (None, None) => bail!(
                "no credentials: set PERSONAS_CLOUD_WORKER_TOKEN (or PERSONAS_CLOUD_DEPLOYMENT_SECRET)"
            ),
        };
        let master_key = parse_key(
            "the master key (PERSONAS_CLOUD_MASTER_KEY)",
            secret(self.master_key.or(file.master_key))
                .context("no master key: set PERSONAS_CLOUD_MASTER_KEY to 64 hex digits")?
                .expose(),
        )?;
        let capacity = self.capacity.or(file.capacity).unwrap_or(1);
        if capacity == 0 {
            bail!("--capacity must be at least 1");
        }
        Ok(WorkerSettings {
            orchestrators,
            id,
            token,
            master_key,
            capacity,
            data_dir: self.data_dir.or(file.data_dir),
            claude_path: self.claude_path.or(file.claude_path),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orchestrator(extra: &[&str]) -> anyhow::Result<OrchestratorSettings> {
        orchestrator_with_key(&"ab".repeat(32), extra)
    }

    fn orchestrator_with_key(key: &str, extra: &[&str]) -> anyhow::Result<OrchestratorSettings> {
        let mut args = vec![
            "personas-cloud",
            "orchestrator",
            "--database-url",
            "postgres://u@127.0.0.1:1/db",
            "--kafka-brokers",
            "127.0.0.1:1",
            "--deployment-secret",
            "s3cret",
            "--master-key",
            key,
        ];
        args.extend_from_slice(extra);
        match Cli::try_parse_from(args)?.mode {
            Mode::Orchestrator(a) => a.resolve(),
            Mode::Worker(_) => unreachable!("parsed an orchestrator"),
        }
    }

    #[test]
    fn jwt_algorithms_without_their_keys_are_refused_at_start() {
        let e = orchestrator(&["--jwt-algorithms", "ES256"]).expect_err("refused");
        assert!(e.to_string().contains("--jwt-jwks-url"), "{e}");
        let e = orchestrator(&["--jwt-algorithms", "HS256"]).expect_err("refused");
        assert!(e.to_string().contains("--jwt-hs256-secret"), "{e}");
        let e = orchestrator(&["--jwt-algorithms", "none"]).expect_err("refused");
        assert!(e.to_string().contains("not one of"), "{e}");
        let ok = orchestrator(&["--jwt-jwks-url", "http://127.0.0.1:1/jwks.json"]).expect("ok");
        assert_eq!(
            ok.jwt.algorithms,
            ["ES256", "RS256"],
            "defaults follow the key source"
        );
    }

    #[test]
    fn the_file_fills_what_flags_leave_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("orchestrator.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9600\"\nmax_attempts = 5\n[kafka_properties]\n\"security.protocol\" = \"SSL\"\n",
        )
        .expect("write");
        let path = file.display().to_string();
        let s = orchestrator(&["--config", &path, "--max-attempts", "2"]).expect("ok");
        assert_eq!(s.listen.to_string(), "127.0.0.1:9600", "from the file");
        assert_eq!(s.max_attempts, 2, "the flag wins");
        assert_eq!(
            s.kafka_properties,
            [("security.protocol".to_string(), "SSL".to_string())]
        );
        std::fs::write(&file, "config = \"x\"\n").expect("write");
        let e = orchestrator(&["--config", &path]).expect_err("refused");
        assert!(format!("{e:#}").contains("unknown field"), "{e:#}");
    }

    #[test]
    fn a_bad_master_key_is_named() {
        let e = orchestrator_with_key("abcd", &[]).expect_err("refused");
        assert!(e.to_string().contains("master key"), "{e}");
    }
}
