//! The Action extension point and the built-in actions.
//!
//! An action is one kind of workflow step (`send_email`, `webhook`, …). Integrators add their own by
//! implementing [`Action`] in their crate and registering it in an [`ActionRegistry`]; the built-ins
//! register the same way. Actions never touch the database or the HTTP server: what they need from
//! the engine's state comes through [`StepContext`] and what they change in it goes back as an
//! [`Effect`].

pub mod builtin;
pub mod http;
mod registry;
pub mod sign;
pub mod template;
pub mod vapid;

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use uuid::Uuid;

pub use registry::{ActionRegistry, DynAction, PreparedParams};

/// Why a step's parameters are not acceptable. Shown to the API client as a `VALIDATION_ERROR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    /// The parameter concerned, when there is one (`url`, `recipient`).
    pub field: Option<String>,
    pub message: String,
}

impl ValidationError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            field: None,
            message: message.into(),
        }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("{field}: {}", message.into());
        Self {
            field: Some(field),
            message,
        }
    }
}

/// How a step failed. Retry-or-give-up is decided here, by the action, not by string matching.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActionError {
    /// Worth another attempt on the retry schedule; `after` is the peer's own hint
    /// (`Retry-After`), honoured instead of the schedule's next delay when present.
    #[error("{reason}")]
    Retryable {
        reason: String,
        after: Option<Duration>,
    },
    /// Will fail the same way every time: the execution pauses at once.
    #[error("{reason}")]
    Permanent { reason: String },
    /// The target said it is gone for good (HTTP 410): the endpoint is disabled for the tenant.
    #[error("{reason}")]
    EndpointGone { reason: String },
}

impl ActionError {
    pub fn retryable(reason: impl Into<String>) -> Self {
        ActionError::Retryable {
            reason: reason.into(),
            after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        ActionError::Permanent {
            reason: reason.into(),
        }
    }
}

/// A kind of record the engine keeps for a tenant on behalf of actions. An action names the
/// kinds it reads in [`Action::needs`] (the engine loads them into [`TenantView`] before each
/// attempt) and may forget one it was given with [`Effect::ForgetTenantRecord`]; the engine maps
/// each kind to its own storage, so it never needs to know which action uses which records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    /// Web Push subscriptions saved by the tenant (`POST /api/integrations/save-vapid-subscription`), keyed by
    /// endpoint URL; loaded into [`TenantView::push_subscriptions`].
    PushSubscription,
    /// The tenant's store integrations with their credentials decrypted, keyed by the
    /// integration's guid; loaded into [`TenantView::store_connections`].
    StoreConnection,
}

impl RecordKind {
    /// How the kind is named in messages (`push subscription`).
    pub fn describe(self) -> &'static str {
        match self {
            RecordKind::PushSubscription => "push subscription",
            RecordKind::StoreConnection => "store connection",
        }
    }

    /// Whether a step may forget a record of this kind ([`Effect::ForgetTenantRecord`]): a push
    /// subscription its service says is gone, yes; a store integration, which only the merchant
    /// removes, no.
    pub fn forgettable(self) -> bool {
        match self {
            RecordKind::PushSubscription => true,
            RecordKind::StoreConnection => false,
        }
    }
}

/// A change to the engine's state that a step asks for; the engine applies it in the same
/// transaction that records the step's success.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Set the entity's status and emit `<entity>_status_changed` (and the named trigger, if any).
    SetEntityStatus { status: String },
    /// Park the execution as `waiting` and run the next step after this long.
    Wait { duration: Duration },
    /// Forget one of the tenant's records, by its key (a push subscription's endpoint), because
    /// the peer it points at says it is gone. Only kinds the action declares in
    /// [`Action::needs`] may be forgotten: an effect on any other kind fails the step. Forgetting
    /// a record that is already gone changes nothing, so a retried step may repeat it.
    ForgetTenantRecord { kind: RecordKind, key: String },
}

/// What a successful step returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// A short, human-readable account kept on the attempt (`"202 Accepted"`).
    pub summary: String,
    /// Structured detail kept on the attempt (peer status, per-subscription results…).
    pub output: Value,
    pub effects: Vec<Effect>,
}

impl Outcome {
    pub fn summary(summary: impl Into<String>) -> Self {
        Self {
            summary: summary.into(),
            ..Self::default()
        }
    }

    pub fn with_effect(mut self, effect: Effect) -> Self {
        self.effects.push(effect);
        self
    }
}

/// A Web Push subscription saved by a tenant (`save-vapid-subscription`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscription {
    pub endpoint: String,
    /// base64url, uncompressed P-256 point (65 bytes).
    pub p256dh: String,
    /// base64url, 16 bytes.
    pub auth: String,
}

/// One of the tenant's store integrations (CONTRACT §6), credentials decrypted, for actions that
/// call the store back (`push_tracking`).
#[derive(Clone, PartialEq, Eq)]
pub struct StoreConnection {
    /// The integration's guid.
    pub guid: Uuid,
    /// The provider's code (`shopify`, `woocommerce`, `custom`).
    pub provider: String,
    /// `https://shop.example.com`, normalized (no trailing slash); `None` for providers without
    /// a store.
    pub store_url: Option<String>,
    pub api_key: Option<String>,
    pub api_secret: Option<String>,
    /// False once the merchant disabled the integration.
    pub active: bool,
}

impl std::fmt::Debug for StoreConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials never reach a log line.
        f.debug_struct("StoreConnection")
            .field("guid", &self.guid)
            .field("provider", &self.provider)
            .field("store_url", &self.store_url)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// What the engine knows about the tenant a step runs for, loaded before the step runs. Records
/// (the `Vec`s) are loaded only for the kinds the action names in [`Action::needs`]; for any
/// other kind they are empty.
#[derive(Debug, Clone, Default)]
pub struct TenantView {
    pub id: Uuid,
    pub name: String,
    /// Where `recipient: merchant` emails go.
    pub notification_email: Option<String>,
    /// [`RecordKind::PushSubscription`], oldest first.
    pub push_subscriptions: Vec<PushSubscription>,
    /// [`RecordKind::StoreConnection`], oldest first.
    pub store_connections: Vec<StoreConnection>,
}

/// Everything a step may read. Parameters are already rendered (templates applied) and
/// secrets decrypted.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// Stable across every attempt of this step, crash-recovered ones included: the idempotency
    /// key for the outside world (`webhook-id`, `Message-ID`).
    pub step_id: Uuid,
    pub execution_id: Uuid,
    pub workflow_id: Uuid,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub entity_type: String,
    /// Empty when the execution has no entity (a schedule tick started it); real ids never are.
    pub entity_id: String,
    /// The entity's data as stored when the step runs.
    pub entity: Value,
    /// `{"id", "trigger", "occurredAt", "previous", …}` of the event that started the execution.
    pub event: Value,
    /// `{"guid", "name", "version"}`.
    pub workflow: Value,
    pub tenant: TenantView,
    /// The limits templates render under (`--max-rendered-bytes`): the built-in email templates
    /// render against entity data too.
    pub template_limits: crate::template::TemplateLimits,
}

impl StepContext {
    /// The object templates are rendered against: `entity`, `event`, `workflow`.
    pub fn template_scope(&self) -> Value {
        serde_json::json!({
            "entity": self.entity,
            "event": self.event,
            "workflow": self.workflow,
        })
    }
}

/// One kind of workflow step.
///
/// `Config` is the step's typed parameters, deserialized from the workflow's action object (less
/// its `type`). Implementations validate without I/O and execute idempotently: the engine runs a
/// step at least once, so the same `step_id` may arrive more than once.
pub trait Action: Send + Sync + 'static {
    type Config: DeserializeOwned + Send + Sync + 'static;

    /// The `type` string of this action in workflow specs.
    fn kind(&self) -> &'static str;

    /// A sentence for the catalog and the docs.
    fn description(&self) -> &'static str {
        ""
    }

    /// Checks that need more than deserialization (an URL's scheme, a duration's range). No I/O.
    fn validate(&self, _config: &Self::Config) -> Result<(), ValidationError> {
        Ok(())
    }

    /// Names of parameters holding secrets: encrypted at rest, not shown again after creation.
    fn secret_params(&self) -> &'static [&'static str] {
        &[]
    }

    /// Names of parameters holding HTML: values templates paste into them are HTML-escaped.
    fn html_params(&self) -> &'static [&'static str] {
        &[]
    }

    /// Called once when a workflow is saved, before validation: fill in generated values (a webhook
    /// secret). Returns the names of parameters generated here, which are shown to the client once.
    fn prepare(&self, _params: &mut Map<String, Value>) -> Vec<String> {
        Vec::new()
    }

    /// The outbound endpoint this step reaches, for per-tenant endpoint health (a URL).
    fn endpoint(&self, _config: &Self::Config) -> Option<String> {
        None
    }

    /// The kinds of tenant records this action reads from [`StepContext::tenant`], loaded before
    /// each attempt; also the only kinds its [`Effect::ForgetTenantRecord`] may name. None by
    /// default, so an action that needs nothing costs no query.
    fn needs(&self) -> &'static [RecordKind] {
        &[]
    }

    /// Run the step.
    fn execute(
        &self,
        config: Self::Config,
        ctx: &StepContext,
    ) -> impl Future<Output = Result<Outcome, ActionError>> + Send;
}
