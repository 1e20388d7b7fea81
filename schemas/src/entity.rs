//! Entity types: the kinds of commerce record whose events drive workflows.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

/// The kind of record an event is about. Case-insensitive when parsed from a path or body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema)]
pub enum EntityType {
    Order,
    Shipment,
    Customer,
    Product,
}

impl EntityType {
    pub const ALL: [EntityType; 4] = [
        EntityType::Order,
        EntityType::Shipment,
        EntityType::Customer,
        EntityType::Product,
    ];

    /// The canonical spelling, as in the seed (`Order`).
    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::Order => "Order",
            EntityType::Shipment => "Shipment",
            EntityType::Customer => "Customer",
            EntityType::Product => "Product",
        }
    }

    /// The lower-case prefix of this entity's trigger codes (`order` in `order_paid`).
    pub fn code_prefix(self) -> &'static str {
        match self {
            EntityType::Order => "order",
            EntityType::Shipment => "shipment",
            EntityType::Customer => "customer",
            EntityType::Product => "product",
        }
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown entity type; its message lists the known ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEntityType(pub String);

impl fmt::Display for UnknownEntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown entity type `{}`: expected one of Order, Shipment, Customer, Product",
            self.0
        )
    }
}

impl std::error::Error for UnknownEntityType {}

impl FromStr for EntityType {
    type Err = UnknownEntityType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntityType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownEntityType(s.chars().take(64).collect()))
    }
}

impl<'de> Deserialize<'de> for EntityType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitively_and_rejects_unknown() {
        assert_eq!("shipment".parse::<EntityType>(), Ok(EntityType::Shipment));
        assert_eq!("ORDER".parse::<EntityType>(), Ok(EntityType::Order));
        let err = "Invoice".parse::<EntityType>().unwrap_err();
        assert!(err.to_string().contains("Invoice"));
    }
}
