//! The registry of action types: built-ins and integrators' actions register the same way.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::{Action, ActionError, Outcome, RecordKind, StepContext, ValidationError};

/// The object-safe face of an [`Action`], which the registry stores.
pub trait DynAction: Send + Sync {
    fn kind(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn secret_params(&self) -> &'static [&'static str];
    fn html_params(&self) -> &'static [&'static str];
    fn prepare(&self, params: &mut Map<String, Value>) -> Vec<String>;
    fn validate(&self, params: &Map<String, Value>) -> Result<(), ValidationError>;
    fn endpoint(&self, params: &Map<String, Value>) -> Option<String>;
    fn needs(&self) -> &'static [RecordKind];
    fn execute<'a>(
        &'a self,
        params: Map<String, Value>,
        ctx: &'a StepContext,
    ) -> BoxFuture<'a, Result<Outcome, ActionError>>;
}

fn parse<C: serde::de::DeserializeOwned>(params: &Map<String, Value>) -> Result<C, String> {
    serde_json::from_value(Value::Object(params.clone())).map_err(|e| e.to_string())
}

impl<A: Action> DynAction for A {
    fn kind(&self) -> &'static str {
        Action::kind(self)
    }

    fn description(&self) -> &'static str {
        Action::description(self)
    }

    fn secret_params(&self) -> &'static [&'static str] {
        Action::secret_params(self)
    }

    fn html_params(&self) -> &'static [&'static str] {
        Action::html_params(self)
    }

    fn prepare(&self, params: &mut Map<String, Value>) -> Vec<String> {
        Action::prepare(self, params)
    }

    fn validate(&self, params: &Map<String, Value>) -> Result<(), ValidationError> {
        let config: A::Config = parse(params).map_err(ValidationError::new)?;
        Action::validate(self, &config)
    }

    fn endpoint(&self, params: &Map<String, Value>) -> Option<String> {
        parse::<A::Config>(params)
            .ok()
            .and_then(|c| Action::endpoint(self, &c))
    }

    fn needs(&self) -> &'static [RecordKind] {
        Action::needs(self)
    }

    fn execute<'a>(
        &'a self,
        params: Map<String, Value>,
        ctx: &'a StepContext,
    ) -> BoxFuture<'a, Result<Outcome, ActionError>> {
        Box::pin(async move {
            // Parameters were valid when saved, but rendering templates can still make them
            // invalid (an address template that renders to garbage): that is permanent.
            let config: A::Config = parse(&params).map_err(ActionError::permanent)?;
            Action::validate(self, &config).map_err(|e| ActionError::permanent(e.message))?;
            Action::execute(self, config, ctx).await
        })
    }
}

/// A workflow step's parameters after [`ActionRegistry::prepare`]: validated, with generated
/// values filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedParams {
    pub params: Map<String, Value>,
    /// Parameters generated at this save (shown to the client once).
    pub generated: Vec<String>,
}

/// Every action type this process can run, by `type` string.
#[derive(Clone, Default)]
pub struct ActionRegistry {
    actions: BTreeMap<&'static str, Arc<dyn DynAction>>,
}

impl std::fmt::Debug for ActionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.actions.keys()).finish()
    }
}

impl ActionRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an action type; a later registration of the same `type` replaces the earlier one, so an
    /// integrator can override a built-in.
    pub fn register<A: Action>(&mut self, action: A) -> &mut Self {
        self.actions.insert(Action::kind(&action), Arc::new(action));
        self
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn DynAction>> {
        self.actions.get(kind)
    }

    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.actions.keys().copied()
    }

    /// Validates a step at save time, without I/O: the type is known, generated values are filled
    /// in, every string parameter parses as a template, and the typed config accepts the params.
    pub fn prepare(
        &self,
        kind: &str,
        params: &Map<String, Value>,
    ) -> Result<PreparedParams, ValidationError> {
        let action = self.get(kind).ok_or_else(|| {
            ValidationError::field(
                "type",
                format!(
                    "unknown action type `{}`: expected one of {}",
                    kind.chars().take(64).collect::<String>(),
                    self.kinds().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        let mut params = params.clone();
        let generated = action.prepare(&mut params);
        crate::template::check_params(&params)?;
        action.validate(&params)?;
        Ok(PreparedParams { params, generated })
    }
}
