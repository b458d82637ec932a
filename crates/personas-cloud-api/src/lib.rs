//! `personas-cloud-api`: the cloud's vocabulary, shared by the orchestrator, the worker and every
//! client (the CLI, the desktop, the local runtime).
//!
//! - [`for_each_cloud_operation!`] is THE table of the orchestrator's HTTP API: name, request,
//!   response, doc. The orchestrator expands it into routes (`POST /api/<name>`, JSON in and
//!   out, bearer JWT or static token), [`CloudClient`] into typed methods, and the OpenAPI
//!   document comes from it, so none of the three can miss an operation.
//! - [`model`]: the request and response types.
//! - [`wire`]: the worker protocol (orchestrator ⇄ worker over a WebSocket) with per-frame MACs
//!   keyed by a per-worker token derived from the deployment secret.
//! - [`stream`]: what a client's WebSocket (`GET /api/stream?after=N`) carries.
//! - [`error`]: `{code, message, field}`, the same shape as the local API's errors.
//! - [`client`]: [`CloudClient`], HTTP + WebSocket, for the CLI and the desktop.
//! - [`topics`]: the Kafka topic names, namespaced per deployment.
#![forbid(unsafe_code)]

pub mod client;
pub mod error;
pub mod model;
pub mod stream;
pub mod topics;
pub mod wire;

pub use client::CloudClient;
pub use error::{CloudError, CloudErrorCode};

/// The orchestrator's operations. Every one is `POST /api/<name>` with the request as the JSON
/// body and the response as the JSON answer; errors are [`CloudError`] with an HTTP status from
/// its code. Every operation is scoped to the caller's tenant.
#[macro_export]
macro_rules! for_each_cloud_operation {
    ($callback:ident) => {
        $callback! {
            /// Who the caller is: the tenant its token maps to.
            whoami: $crate::model::Empty => $crate::model::Identity,
            /// Queues a run of a pushed persona; a worker picks it up as soon as one is idle.
            execute: $crate::model::Execute => $crate::model::CloudExecution,
            /// The tenant's executions, newest first.
            list_executions: $crate::model::ListExecutions => $crate::model::CloudExecutionList,
            /// One execution with its attempts.
            get_execution: $crate::model::ExecutionRef => $crate::model::CloudExecution,
            /// Asks the worker running the execution to stop its CLI (and its tools); a queued
            /// execution is cancelled at once.
            cancel_execution: $crate::model::ExecutionRef => $crate::model::CloudExecution,
            /// A page of an execution's stored output lines after a sequence number.
            execution_output: $crate::model::OutputRequest => $crate::model::OutputPage,
            /// Stores (or replaces) a persona definition — the persona file text `persona export`
            /// writes — with its linked credentials, sealed with the deployment key on arrival.
            push_persona: $crate::model::PushPersona => $crate::model::CloudPersona,
            /// The tenant's pushed personas.
            list_personas: $crate::model::Empty => $crate::model::CloudPersonaList,
            /// Removes a pushed persona, its triggers and its sealed credentials.
            delete_persona: $crate::model::PersonaRef => $crate::model::CloudPersona,
            /// The triggers of the tenant's pushed personas (cron with its next fire).
            list_triggers: $crate::model::Empty => $crate::model::CloudTriggerList,
            /// Publishes an event on the tenant's bus; subscribed personas run.
            publish_event: $crate::model::PublishEvent => $crate::model::CloudEvent,
            /// The tenant's events, newest first.
            list_events: $crate::model::ListEvents => $crate::model::CloudEventList,
            /// Stores the tenant's own Claude credential (an OAuth token from `claude
            /// setup-token`, or an API key), sealed; injected into every run of the tenant.
            set_model_credential: $crate::model::SetModelCredential => $crate::model::ModelCredentialStatus,
            /// Orchestrators, workers (idle or busy, with their current execution) and the
            /// broker's lag on the execution topic.
            get_cluster: $crate::model::Empty => $crate::model::Cluster,
            /// The tenant's usage in a month.
            get_usage: $crate::model::UsageRequest => $crate::model::Usage,
        }
    };
}

/// Name and doc of one operation.
#[derive(Debug, Clone, Copy)]
pub struct CloudOperationInfo {
    pub name: &'static str,
    pub doc: &'static str,
}

macro_rules! define_cloud_operations {
    ($( $(#[doc = $doc:literal])* $name:ident : $req:ty => $resp:ty ),* $(,)?) => {
        /// Every operation, in table order.
        pub const CLOUD_OPERATIONS: &[CloudOperationInfo] = &[
            $( CloudOperationInfo { name: stringify!($name), doc: concat!($($doc),*) } ),*
        ];

        impl CloudClient {
            $(
                $(#[doc = $doc])*
                pub async fn $name(&self, req: &$req) -> Result<$resp, CloudError> {
                    self.call(stringify!($name), req).await
                }
            )*
        }

        /// Visits every operation's request and response type (the OpenAPI generator).
        pub fn visit_operations(v: &mut impl OperationVisitor) {
            $( v.operation::<$req, $resp>(stringify!($name), concat!($($doc),*)); )*
        }
    };
}

/// Receives each operation's types; implemented by the OpenAPI generator.
pub trait OperationVisitor {
    fn operation<Req: schemars::JsonSchema, Resp: schemars::JsonSchema>(
        &mut self,
        name: &'static str,
        doc: &'static str,
    );
}

for_each_cloud_operation!(define_cloud_operations);

/// The OpenAPI 3.1 document of the orchestrator's operations, from the table.
pub fn openapi() -> serde_json::Value {
    struct Doc {
        paths: serde_json::Map<String, serde_json::Value>,
        generator: schemars::SchemaGenerator,
    }
    impl OperationVisitor for Doc {
        fn operation<Req: schemars::JsonSchema, Resp: schemars::JsonSchema>(
            &mut self,
            name: &'static str,
            doc: &'static str,
        ) {
            let req = self.generator.subschema_for::<Req>();
            let resp = self.generator.subschema_for::<Resp>();
            let err = self.generator.subschema_for::<CloudError>();
            self.paths.insert(
                format!("/api/{name}"),
                serde_json::json!({ "post": {
                    "operationId": name,
                    "summary": doc.trim(),
                    "security": [{ "bearer": [] }],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": req } } },
                    "responses": {
                        "200": { "description": "OK", "content": { "application/json": { "schema": resp } } },
                        "default": { "description": "Error", "content": { "application/json": { "schema": err } } }
                    }
                }}),
            );
        }
    }
    let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
    });
    let mut doc = Doc {
        paths: serde_json::Map::new(),
        generator: settings.into_generator(),
    };
    visit_operations(&mut doc);
    let schemas = doc.generator.take_definitions(true);
    serde_json::json!({
        "openapi": "3.1.0",
        "info": { "title": "Personas cloud orchestrator", "version": env!("CARGO_PKG_VERSION") },
        "paths": doc.paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } }
        }
    })
}
