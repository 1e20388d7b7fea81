//! The trigger catalog: which events a workflow can listen to, with guids that are the same on
//! every deployment.

use switchyard_schemas::{EntityType, TriggerInfo};
use uuid::{Uuid, uuid};

use crate::error::{TriggerError, echo};

/// The namespace under which trigger guids are derived (UUID v5 of the trigger code).
///
/// It must never change: workflows store the guid, clients hard-code it, and two deployments
/// agree on a trigger's guid only because both hash the code under this same namespace.
pub const TRIGGER_NAMESPACE: Uuid = uuid!("5c1d7e3a-92b4-4f0e-8a6d-1f3b9c27e4d8");

/// One entry of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Trigger {
    pub code: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub entity_type: EntityType,
    /// True for `<entity>_schedule`: fired by cron, not by an entity event.
    pub scheduled: bool,
}

impl Trigger {
    /// The stable guid (UUID v5 of the code under [`TRIGGER_NAMESPACE`]).
    pub fn guid(&self) -> Uuid {
        trigger_guid(self.code)
    }

    /// The catalog entry as the API shows it.
    pub fn info(&self) -> TriggerInfo {
        TriggerInfo {
            guid: self.guid(),
            name: self.name.to_owned(),
            code: self.code.to_owned(),
            description: self.description.to_owned(),
            entity_type: self.entity_type,
            scheduled: self.scheduled,
        }
    }
}

const fn event(
    code: &'static str,
    name: &'static str,
    description: &'static str,
    entity_type: EntityType,
) -> Trigger {
    Trigger {
        code,
        name,
        description,
        entity_type,
        scheduled: false,
    }
}

const fn schedule(
    code: &'static str,
    name: &'static str,
    description: &'static str,
    entity_type: EntityType,
) -> Trigger {
    Trigger {
        code,
        name,
        description,
        entity_type,
        scheduled: true,
    }
}

use EntityType::{Customer, Order, Product, Shipment};

/// Grouped by entity, in the order the API lists them. Append only: codes are stored in
/// workflows and events.
static CATALOG: [Trigger; 19] = [
    event(
        "order_created",
        "Order Created",
        "Fires when a new order is created",
        Order,
    ),
    event(
        "order_status_changed",
        "Order Status Changed",
        "Fires whenever an order's status changes",
        Order,
    ),
    event(
        "order_paid",
        "Order Paid",
        "Fires when an order is paid",
        Order,
    ),
    event(
        "order_cancelled",
        "Order Cancelled",
        "Fires when an order is cancelled",
        Order,
    ),
    event(
        "order_fulfilled",
        "Order Fulfilled",
        "Fires when an order is fulfilled",
        Order,
    ),
    schedule(
        "order_schedule",
        "Order Schedule",
        "Fires on a cron schedule, for order workflows",
        Order,
    ),
    event(
        "shipment_created",
        "Shipment Created",
        "Fires when a new shipment is created",
        Shipment,
    ),
    event(
        "shipment_status_changed",
        "Shipment Status Changed",
        "Fires whenever a shipment's status changes",
        Shipment,
    ),
    event(
        "shipment_shipped",
        "Shipment Shipped",
        "Fires when a shipment is handed to the carrier",
        Shipment,
    ),
    event(
        "shipment_delivered",
        "Shipment Delivered",
        "Fires when a shipment is delivered",
        Shipment,
    ),
    event(
        "shipment_exception",
        "Shipment Exception",
        "Fires when a shipment runs into a delivery exception",
        Shipment,
    ),
    schedule(
        "shipment_schedule",
        "Shipment Schedule",
        "Fires on a cron schedule, for shipment workflows",
        Shipment,
    ),
    event(
        "customer_created",
        "Customer Created",
        "Fires when a new customer is created",
        Customer,
    ),
    event(
        "customer_updated",
        "Customer Updated",
        "Fires when a customer is updated",
        Customer,
    ),
    schedule(
        "customer_schedule",
        "Customer Schedule",
        "Fires on a cron schedule, for customer workflows",
        Customer,
    ),
    event(
        "product_created",
        "Product Created",
        "Fires when a new product is created",
        Product,
    ),
    event(
        "product_updated",
        "Product Updated",
        "Fires when a product is updated",
        Product,
    ),
    event(
        "product_out_of_stock",
        "Product Out of Stock",
        "Fires when a product runs out of stock",
        Product,
    ),
    schedule(
        "product_schedule",
        "Product Schedule",
        "Fires on a cron schedule, for product workflows",
        Product,
    ),
];

/// The whole catalog.
pub fn all() -> &'static [Trigger] {
    &CATALOG
}

/// The triggers of one entity type, in catalog order.
pub fn for_entity(t: EntityType) -> impl Iterator<Item = &'static Trigger> {
    CATALOG.iter().filter(move |tr| tr.entity_type == t)
}

/// Exact (case-sensitive) lookup, for codes that come from our own records.
pub fn by_code(code: &str) -> Option<&'static Trigger> {
    CATALOG.iter().find(|t| t.code == code)
}

/// UUID v5 of `code` under [`TRIGGER_NAMESPACE`]. Defined for any string so callers can hash a
/// code before checking it exists.
pub fn trigger_guid(code: &str) -> Uuid {
    Uuid::new_v5(&TRIGGER_NAMESPACE, code.as_bytes())
}

/// Resolves a workflow's `triggerId`: the trigger's guid (any case, any textual UUID form) or its
/// code (case-insensitive), which must belong to `entity`.
pub fn resolve(entity: EntityType, id_or_code: &str) -> Result<&'static Trigger, TriggerError> {
    let given = id_or_code.trim();
    let found = match Uuid::try_parse(given) {
        Ok(guid) => CATALOG.iter().find(|t| t.guid() == guid),
        Err(_) => CATALOG.iter().find(|t| t.code.eq_ignore_ascii_case(given)),
    };
    let valid = || for_entity(entity).map(|t| t.code).collect();
    match found {
        Some(t) if t.entity_type == entity => Ok(t),
        Some(t) => Err(TriggerError::WrongEntity {
            code: t.code,
            belongs_to: t.entity_type,
            requested: entity,
            valid: valid(),
        }),
        None => Err(TriggerError::UnknownTrigger {
            given: echo(given),
            entity,
            valid: valid(),
        }),
    }
}

/// The triggers emitted when an `update_status` action sets `entity`'s status to `status`.
///
/// The status is compared case-insensitively, ignoring `_`, `-` and spaces.
///
/// | entity   | always                    | plus, for the new status                                  |
/// |----------|---------------------------|-----------------------------------------------------------|
/// | Order    | `order_status_changed`    | `paid` → `order_paid`; `cancelled`/`canceled` → `order_cancelled`; `fulfilled` → `order_fulfilled` |
/// | Shipment | `shipment_status_changed` | `shipped` → `shipment_shipped`; `delivered` → `shipment_delivered`; `exception` → `shipment_exception` |
/// | Customer | `customer_updated`        | — (customers have no status trigger of their own)         |
/// | Product  | `product_updated`         | `out_of_stock`/`outofstock` → `product_out_of_stock`      |
///
/// The general trigger comes first, so a chain's causal order reads naturally.
pub fn triggers_for_status(entity: EntityType, status: &str) -> Vec<&'static Trigger> {
    let normalized: String = status
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let (general, specific) = match entity {
        Order => (
            "order_status_changed",
            match normalized.as_str() {
                "paid" => Some("order_paid"),
                "cancelled" | "canceled" => Some("order_cancelled"),
                "fulfilled" => Some("order_fulfilled"),
                _ => None,
            },
        ),
        Shipment => (
            "shipment_status_changed",
            match normalized.as_str() {
                "shipped" => Some("shipment_shipped"),
                "delivered" => Some("shipment_delivered"),
                "exception" => Some("shipment_exception"),
                _ => None,
            },
        ),
        Customer => ("customer_updated", None),
        Product => (
            "product_updated",
            (normalized == "outofstock").then_some("product_out_of_stock"),
        ),
    };
    std::iter::once(general)
        .chain(specific)
        .filter_map(by_code)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn catalog_has_every_contract_code_once() {
        let codes: Vec<_> = all().iter().map(|t| t.code).collect();
        let unique: HashSet<_> = codes.iter().collect();
        assert_eq!(codes.len(), 19);
        assert_eq!(unique.len(), 19);
        for t in all() {
            assert!(
                t.code.starts_with(t.entity_type.code_prefix()),
                "{} has the wrong prefix",
                t.code
            );
            assert_eq!(t.scheduled, t.code.ends_with("_schedule"), "{}", t.code);
        }
        for e in EntityType::ALL {
            assert_eq!(
                for_entity(e).filter(|t| t.scheduled).count(),
                1,
                "{e} needs exactly one schedule trigger"
            );
        }
    }

    #[test]
    fn guids_are_pinned() {
        // If this fails the namespace or the derivation changed: every stored workflow and every
        // client holding a trigger guid would break. Do not "fix" the expected value.
        assert_eq!(
            trigger_guid("order_created").to_string(),
            "7c1db686-ce5b-553d-8ed6-2bb455445f03",
            "namespace {TRIGGER_NAMESPACE}"
        );
        let t = by_code("order_created").expect("in catalog");
        assert_eq!(t.guid(), trigger_guid("order_created"));
        assert_eq!(t.guid().get_version_num(), 5);
        let guids: HashSet<_> = all().iter().map(Trigger::guid).collect();
        assert_eq!(guids.len(), all().len());
    }

    #[test]
    fn info_matches_the_entry() {
        let info = by_code("shipment_delivered").expect("in catalog").info();
        assert_eq!(info.name, "Shipment Delivered");
        assert_eq!(info.entity_type, Shipment);
        assert_eq!(info.guid, trigger_guid("shipment_delivered"));
        assert!(!info.scheduled);
        assert!(
            by_code("product_schedule")
                .expect("in catalog")
                .info()
                .scheduled
        );
    }

    #[test]
    fn resolve_accepts_guid_in_any_case_and_code_in_any_case() {
        let guid = trigger_guid("order_paid");
        let upper = guid.to_string().to_uppercase();
        assert_eq!(resolve(Order, &upper).map(|t| t.code), Ok("order_paid"));
        assert_eq!(
            resolve(Order, &guid.simple().to_string()).map(|t| t.code),
            Ok("order_paid")
        );
        assert_eq!(
            resolve(Order, "ORDER_PAID").map(|t| t.code),
            Ok("order_paid")
        );
        assert_eq!(
            resolve(Order, " order_paid ").map(|t| t.code),
            Ok("order_paid")
        );
    }

    #[test]
    fn resolve_explains_wrong_entity_and_unknown_codes() {
        let err = resolve(Shipment, "order_paid").expect_err("wrong entity");
        let msg = err.message();
        assert!(
            msg.starts_with("trigger `order_paid` belongs to Order, not Shipment"),
            "{msg}"
        );
        assert!(msg.contains("shipment_delivered"), "{msg}");
        assert!(!msg.contains("order_created"), "{msg}");

        let err = resolve(Order, "order_shipped").expect_err("unknown");
        assert!(err.message().starts_with("unknown trigger `order_shipped`"));
        assert!(err.message().contains("order_schedule"));

        let random = Uuid::new_v4().to_string();
        assert!(matches!(
            resolve(Order, &random),
            Err(TriggerError::UnknownTrigger { .. })
        ));
        // A guid of another entity's trigger is a wrong-entity error, not an unknown one.
        let other = trigger_guid("product_updated").to_string();
        assert!(matches!(
            resolve(Order, &other),
            Err(TriggerError::WrongEntity {
                code: "product_updated",
                ..
            })
        ));
    }

    fn codes(entity: EntityType, status: &str) -> Vec<&'static str> {
        triggers_for_status(entity, status)
            .into_iter()
            .map(|t| t.code)
            .collect()
    }

    #[test]
    fn status_changes_emit_the_general_and_the_named_trigger() {
        assert_eq!(codes(Order, "paid"), ["order_status_changed", "order_paid"]);
        assert_eq!(
            codes(Order, "Canceled"),
            ["order_status_changed", "order_cancelled"]
        );
        assert_eq!(
            codes(Order, "cancelled"),
            ["order_status_changed", "order_cancelled"]
        );
        assert_eq!(
            codes(Order, "fulfilled"),
            ["order_status_changed", "order_fulfilled"]
        );
        assert_eq!(codes(Order, "pending"), ["order_status_changed"]);
        assert_eq!(
            codes(Shipment, "DELIVERED"),
            ["shipment_status_changed", "shipment_delivered"]
        );
        assert_eq!(
            codes(Shipment, "shipped"),
            ["shipment_status_changed", "shipment_shipped"]
        );
        assert_eq!(
            codes(Shipment, "exception"),
            ["shipment_status_changed", "shipment_exception"]
        );
        assert_eq!(codes(Customer, "vip"), ["customer_updated"]);
        assert_eq!(codes(Product, "active"), ["product_updated"]);
        assert_eq!(
            codes(Product, "out_of_stock"),
            ["product_updated", "product_out_of_stock"]
        );
        assert_eq!(
            codes(Product, "OutOfStock"),
            ["product_updated", "product_out_of_stock"]
        );
    }
}
