//! Condition evaluation throughput: how many workflow conditions one core can test per second.
//!
//! Run with `cargo bench -p switchyard-triggers`; criterion prints the figures (elements/s is
//! evaluations/s). The target is at least 200,000 evaluations/s per core for a typical script.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use switchyard_triggers::{
    ConditionEngine, EvalInput, WorkflowConditions, evaluate_prepared, matching,
};

const SCRIPT: &str = r#"entity.total > 100 && entity.customer.country == "DE""#;

/// An order as a store sends it: a few dozen fields, a customer, addresses and line items.
fn order() -> Value {
    json!({
        "id": "ord_1001", "number": "#1001", "status": "paid", "currency": "EUR",
        "total": 120.5, "subtotal": 110.0, "tax": 10.5, "shipping": 4.9, "discount": 4.4,
        "createdAt": "2026-05-01T10:00:00Z", "updatedAt": "2026-05-01T10:05:00Z",
        "note": "Please leave at the back door", "tags": ["web", "newsletter"],
        "customer": {
            "id": 7_001_234_567_i64, "email": "ana@example.com", "firstName": "Ana",
            "lastName": "Schmidt", "country": "DE", "ordersCount": 4, "acceptsMarketing": true
        },
        "shippingAddress": {
            "name": "Ana Schmidt", "line1": "Hauptstraße 1", "city": "Berlin",
            "zip": "10115", "country": "DE", "phone": "+49 30 123456"
        },
        "billingAddress": {
            "name": "Ana Schmidt", "line1": "Hauptstraße 1", "city": "Berlin",
            "zip": "10115", "country": "DE"
        },
        "items": [
            {"sku": "TSHIRT-M", "title": "T-Shirt", "qty": 2, "price": 25.0},
            {"sku": "MUG-01", "title": "Mug", "qty": 1, "price": 12.0},
            {"sku": "CAP-L", "title": "Cap", "qty": 1, "price": 48.0}
        ]
    })
}

fn input() -> EvalInput {
    EvalInput {
        entity: order(),
        event: json!({
            "trigger": "order_paid", "occurredAt": "2026-05-01T10:05:00Z",
            "previous": {"status": "pending"}
        }),
        tenant: json!({"id": "9b2f6c1e-0000-4000-8000-000000000001"}),
    }
}

fn bench(c: &mut Criterion) {
    let engine = ConditionEngine::default();
    let cond = engine.compile(SCRIPT).expect("benchmark script compiles");
    let input = input();
    let prepared = input.prepare();
    let workflow = WorkflowConditions {
        conditions: match json!({"status": "paid", "customer.country": "DE"}) {
            Value::Object(m) => m,
            _ => unreachable!("literal object"),
        },
        condition: Some(cond.clone()),
    };

    let mut group = c.benchmark_group("conditions");
    group.throughput(Throughput::Elements(1));
    group.bench_function("script, input prepared once per event", |b| {
        b.iter(|| engine.evaluate_prepared(black_box(&cond), black_box(&prepared)))
    });
    group.bench_function("script, input converted per evaluation", |b| {
        b.iter(|| engine.evaluate(black_box(&cond), black_box(&input)))
    });
    group.bench_function("prepare input (JSON to Rhai)", |b| {
        b.iter(|| black_box(&input).prepare())
    });
    group.bench_function("map + script, prepared (matching)", |b| {
        b.iter(|| {
            evaluate_prepared(
                &engine,
                black_box(&workflow),
                black_box(&input.entity),
                black_box(&prepared),
            )
        })
    });
    group.bench_function("map + script, unprepared (matching)", |b| {
        b.iter(|| matching::evaluate(&engine, black_box(&workflow), black_box(&input)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
