//! Success envelopes of seed 001: `{"data": …, "success": true}`, lists with `cursor`.

use axum::Json;
use serde::Serialize;
use switchyard_schemas::envelope::{DataEnvelope, ListEnvelope, SuccessEnvelope};

pub fn ok<T: Serialize>(data: T) -> Json<DataEnvelope<T>> {
    Json(DataEnvelope {
        data,
        success: true,
    })
}

pub fn list<T: Serialize>(data: Vec<T>, cursor: Option<String>) -> Json<ListEnvelope<T>> {
    Json(ListEnvelope {
        data,
        cursor,
        success: true,
    })
}

pub fn success() -> Json<SuccessEnvelope> {
    Json(SuccessEnvelope { success: true })
}
