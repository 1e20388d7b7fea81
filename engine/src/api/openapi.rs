//! `GET /api/openapi.json`: the OpenAPI 3.1 document of every endpoint, generated from the code.

use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Switchyard API", description = "Workflow automation for commerce: when an entity event happens, if conditions hold, then run actions."),
    paths(
        super::health::healthz, super::health::readyz, super::health::metrics,
        openapi_json,
        super::workflows::triggers, super::workflows::list_configured, super::workflows::get_one,
        super::workflows::configure, super::workflows::toggle, super::workflows::toggle_post,
        super::workflows::remove, super::workflows::resume, super::workflows::resume_post,
        super::workflows::test_workflow,
        super::schedules::list_ticks,
        super::events::ingest, super::events::get_event, super::events::list_events,
        super::push::public_key, super::push::save_subscription,
        super::integrations::providers, super::integrations::list_integrations,
        super::integrations::configure, super::integrations::disable, super::integrations::disable_post,
        super::integrations::remove, super::integrations::inbound,
        super::tenant::read, super::tenant::update,
        super::executions::list_executions, super::executions::get_execution, super::executions::cancel,
        super::executions::bulk_resume, super::executions::bulk_cancel,
    ),
    modifiers(&BearerAuth, &CommonResponses),
    tags(
        (name = "workflows", description = "Workflows and the trigger catalog"),
        (name = "push", description = "Web Push: VAPID key and browser subscriptions"),
        (name = "integrations", description = "Store integrations: provider catalog, configuration, inbound webhooks"),
        (name = "tenant", description = "The tenant's own settings"),
        (name = "events", description = "Entity events in, and what they matched"),
        (name = "executions", description = "Executions of workflows, their steps and attempts"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sk_…")
                    .build(),
            ),
        );
    }
}

/// The statuses a whole class of operations can answer, added to each where its annotation leaves
/// them out, so that the document lists every status the code may send: 401, 403 and 429 wherever
/// a bearer key is checked (the rate limit is per tenant), 400 and 413 wherever a body is read,
/// 503 wherever the database is read (everything but liveness, metrics and this document).
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let database = !matches!(path.as_str(), "/healthz" | "/metrics" | "/api/openapi.json");
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let authenticated = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let body = operation.request_body.is_some();
                let mut statuses: Vec<(&str, &str)> = Vec::new();
                if authenticated {
                    statuses.push(("401", "no `Authorization: Bearer` header"));
                    statuses.push(("403", "the API key is unknown or revoked"));
                    statuses.push(("429", "the tenant's rate limit is spent; see `Retry-After`"));
                }
                if body {
                    statuses.push(("400", "the body is not valid"));
                    statuses.push(("413", "the body is over 1 MiB"));
                }
                if database {
                    statuses.push(("503", "the database is unavailable; see `Retry-After`"));
                }
                for (status, description) in statuses {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error_response(description));
                }
            }
        }
    }
}

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                Content::new(Some(Ref::from_schema_name("ErrorEnvelope"))),
            )
            .build(),
    )
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(openapi_json))
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_documents_the_statuses_of_its_class() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
        let paths = doc["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("a path item") {
                let responses = &operation["responses"];
                let has = |status: &str| responses.get(status).is_some();
                if operation.get("security").is_some() {
                    for status in ["401", "403", "429", "503"] {
                        assert!(has(status), "{method} {path} does not document {status}");
                    }
                }
                if operation.get("requestBody").is_some() {
                    assert!(has("400") && has("413"), "{method} {path}: 400/413");
                }
            }
        }
        assert!(paths["/healthz"]["get"]["responses"].get("503").is_none());
    }
}
