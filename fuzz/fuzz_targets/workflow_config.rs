//! Workflow configuration as `POST /api/workflows/configure` receives it: arbitrary bytes →
//! serde_json → `WorkflowConfig` → the engine's pure validator (built-in actions, the Rhai
//! engine, a master key), then, for what validates, the API's view of it and an update that
//! sends that view back (masked secrets carried over). Nothing may panic, and no secret may
//! show in the view except those the save revealed.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use switchyard::secrets::MasterKey;
use switchyard::store::StoredWorkflow;
use switchyard::workflow_spec::{Validator, to_record};
use switchyard_actions::ActionRegistry;
use switchyard_schemas::WorkflowConfig;
use switchyard_triggers::ConditionEngine;
use uuid::Uuid;

struct World {
    actions: ActionRegistry,
    conditions: ConditionEngine,
    master_key: MasterKey,
}

static WORLD: LazyLock<World> = LazyLock::new(|| World {
    actions: switchyard_actions::builtin::registry(&Default::default())
        .expect("the built-in actions"),
    conditions: ConditionEngine::default(),
    master_key: MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .expect("a 32-byte key"),
});

const TENANT: Uuid = Uuid::from_u128(0x0199_0000_0000_7000_8000_0000_0000_0001);

fuzz_target!(|data: &[u8]| {
    let Ok(config) = serde_json::from_slice::<WorkflowConfig>(data) else {
        return;
    };
    let world = &*WORLD;
    let validator = Validator {
        actions: &world.actions,
        conditions: &world.conditions,
        master_key: &world.master_key,
        tenant_id: TENANT,
    };
    let Ok(validated) = validator.validate(config.clone(), None) else {
        return;
    };
    let now = chrono_now();
    let stored = StoredWorkflow {
        id: Uuid::from_u128(1),
        tenant_id: TENANT,
        is_active: validated.is_active.unwrap_or(true),
        is_managed: false,
        version: 1,
        spec: validated.spec,
        created_at: now,
        updated_at: now,
    };
    // The view of a later read: every secret masked.
    let record = to_record(&stored, &world.actions, &world.master_key, &[]);
    let view = serde_json::to_string(&record).expect("a record serializes");
    for secret in &validated.revealed {
        assert!(
            !view.contains(&secret.value),
            "secret {} of step {} shows in a read",
            secret.param,
            secret.step
        );
    }
    // Read-modify-write: the same config as an update of what was saved validates again.
    let mut update = config;
    update.guid = Some(stored.id);
    if let Err(e) = validator.validate(update, Some(&stored)) {
        panic!("a saved workflow does not validate as its own update: {e:?}");
    }
});

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}
