//! `GET /api/openapi.json`: the OpenAPI 3.1 document of every endpoint, generated from the code.

use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
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
    ),
    modifiers(&BearerAuth),
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

pub fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(openapi_json))
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
