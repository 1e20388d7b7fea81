//! What an action reads from the tenant's records and what its effects change, mapped to the
//! store by record kind and effect, never by action type: a new action that needs push
//! subscriptions (or forgets one) declares it and the engine does the rest.

use std::time::Duration;

use serde_json::Value;
use switchyard_actions::{
    DynAction, Effect, Outcome, PushSubscription, RecordKind, StoreConnection, TenantView,
};

use crate::secrets::{MasterKey, SecretScope};
use crate::store::{StepFinish, Store, StoreError, StoreResult};

/// Integrations read per query when loading a tenant's store connections.
const CONNECTIONS_PAGE: u32 = 200;

/// Loads into `tenant` the records of every kind the action needs; the other kinds stay empty.
pub(crate) async fn load_records(
    store: &Store,
    master_key: &MasterKey,
    needs: &[RecordKind],
    tenant: &mut TenantView,
) -> StoreResult<()> {
    for kind in needs {
        match kind {
            RecordKind::StoreConnection => {
                tenant.store_connections = store_connections(store, master_key, tenant.id).await?;
            }
            RecordKind::PushSubscription => {
                tenant.push_subscriptions = store
                    .push_subscriptions(tenant.id)
                    .await?
                    .into_iter()
                    .map(|(endpoint, p256dh, auth)| PushSubscription {
                        endpoint,
                        p256dh,
                        auth,
                    })
                    .collect();
            }
        }
    }
    Ok(())
}

/// The tenant's integrations with their credentials opened. Credentials are sealed per
/// integration (`SecretScope::integration`) as the JSON document configure wrote; one that does not
/// open is a store fault, not something a step could work around.
async fn store_connections(
    store: &Store,
    master_key: &MasterKey,
    tenant_id: uuid::Uuid,
) -> StoreResult<Vec<StoreConnection>> {
    let mut connections = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_integrations(tenant_id, after, CONNECTIONS_PAGE)
            .await?;
        let full = page.len() == CONNECTIONS_PAGE as usize;
        after = page.last().map(|r| r.id);
        for record in page {
            let plain = master_key
                .decrypt(
                    &record.credentials,
                    &SecretScope::integration(record.tenant_id, record.id),
                )
                .map_err(|e| {
                    StoreError::Corrupt(format!("integration {} credentials: {e}", record.id))
                })?;
            let credentials: Value = serde_json::from_str(&plain).map_err(|e| {
                StoreError::Corrupt(format!("integration {} credentials: {e}", record.id))
            })?;
            let field = |name: &str| {
                credentials
                    .get(name)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            connections.push(StoreConnection {
                guid: record.id,
                active: record.is_active(),
                store_url: record.store_url.clone(),
                api_key: field("apiKey"),
                api_secret: field("apiSecret"),
                provider: record.provider,
            });
        }
        if !full {
            return Ok(connections);
        }
    }
}

/// A successful attempt's outcome as the step's finish, its effects sorted for the store. An
/// effect on records the action did not declare in `needs()` fails the step instead: an action
/// may only forget what it was given.
pub(crate) fn succeeded(action: &dyn DynAction, outcome: Outcome) -> StepFinish {
    let mut wait_ms = None;
    let mut set_status = None;
    let mut forget = Vec::new();
    for effect in outcome.effects {
        match effect {
            Effect::Wait { duration } => wait_ms = Some(millis(duration)),
            Effect::SetEntityStatus { status } => set_status = Some(status),
            Effect::ForgetTenantRecord { kind, key } => {
                if !action.needs().contains(&kind) {
                    return StepFinish::Failed {
                        error: format!(
                            "action `{}` asked to forget a {} without declaring that it needs them",
                            action.kind(),
                            kind.describe()
                        ),
                    };
                }
                if !kind.forgettable() {
                    return StepFinish::Failed {
                        error: format!(
                            "action `{}` asked to forget a {}, which only the merchant removes",
                            action.kind(),
                            kind.describe()
                        ),
                    };
                }
                forget.push((kind, key));
            }
        }
    }
    StepFinish::Succeeded {
        summary: outcome.summary,
        output: outcome.output,
        wait_ms,
        set_status,
        forget,
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchyard_actions::{Action, ActionError, StepContext};

    /// An action that reads nothing and returns the effects it is built with.
    struct Returns(&'static [RecordKind]);

    impl Action for Returns {
        type Config = serde_json::Value;

        fn kind(&self) -> &'static str {
            "returns"
        }

        fn needs(&self) -> &'static [RecordKind] {
            self.0
        }

        async fn execute(
            &self,
            _config: Self::Config,
            _ctx: &StepContext,
        ) -> Result<Outcome, ActionError> {
            Ok(Outcome::default())
        }
    }

    fn outcome(effects: Vec<Effect>) -> Outcome {
        Outcome {
            summary: "done".to_owned(),
            output: json!({}),
            effects,
        }
    }

    #[test]
    fn effects_become_the_finish_the_store_applies() {
        let finish = succeeded(
            &Returns(&[RecordKind::PushSubscription]),
            outcome(vec![
                Effect::Wait {
                    duration: Duration::from_secs(2),
                },
                Effect::SetEntityStatus {
                    status: "paid".to_owned(),
                },
                Effect::ForgetTenantRecord {
                    kind: RecordKind::PushSubscription,
                    key: "https://push.example/a".to_owned(),
                },
            ]),
        );
        let StepFinish::Succeeded {
            wait_ms,
            set_status,
            forget,
            ..
        } = finish
        else {
            panic!("expected a success, got {finish:?}");
        };
        assert_eq!(wait_ms, Some(2000));
        assert_eq!(set_status.as_deref(), Some("paid"));
        assert_eq!(
            forget,
            vec![(
                RecordKind::PushSubscription,
                "https://push.example/a".to_owned()
            )]
        );
    }

    #[test]
    fn forgetting_records_the_action_did_not_declare_fails_the_step() {
        let finish = succeeded(
            &Returns(&[]),
            outcome(vec![Effect::ForgetTenantRecord {
                kind: RecordKind::PushSubscription,
                key: "https://push.example/a".to_owned(),
            }]),
        );
        let StepFinish::Failed { error } = finish else {
            panic!("expected a failure, got {finish:?}");
        };
        assert!(
            error.contains("`returns`") && error.contains("push subscription"),
            "{error}"
        );
    }
}
