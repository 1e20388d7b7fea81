//! Unit tests of the template sandbox: every bounded builtin and operator, hostile and ordinary.

use super::*;
use serde_json::json;

const SIZE_LIMIT: &str = "--max-rendered-bytes";

fn scope() -> Value {
    let big = "x".repeat(1 << 20);
    json!({
        "entity": {"id": "ord_1", "big": big, "big2": big, "items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]},
        "event": {"trigger": "order_paid"},
    })
}

fn run(source: &str) -> Result<String, String> {
    render(source, &scope(), &TemplateLimits::default())
}

/// Asserts that `source` fails, naming `limit` in its error.
fn refused(source: &str, limit: &str) {
    match run(source) {
        Ok(text) => panic!("`{source}` rendered {} bytes", text.len()),
        Err(e) => assert!(e.contains(limit), "`{source}`: {e}"),
    }
}

#[test]
fn renders_nested_strings_and_reports_the_parameter() {
    let params = json!({"subject": "Order {{ entity.id }}", "headers": {"X-N": "{{ event.trigger }}"}, "n": 3});
    let scope = json!({"entity": {"id": "ord_1"}, "event": {"trigger": "order_paid"}});
    let limits = TemplateLimits::default();
    let out = render_params(
        params.as_object().expect("an object"),
        &scope,
        &[],
        &[],
        &limits,
    )
    .expect("should render");
    assert_eq!(out["subject"], "Order ord_1");
    assert_eq!(out["headers"]["X-N"], "order_paid");
    assert_eq!(out["n"], 3);

    let bad = json!({"subject": "{{ entity.id | nosuchfilter }}"});
    let err = render_params(
        bad.as_object().expect("an object"),
        &scope,
        &[],
        &[],
        &limits,
    )
    .expect_err("should fail");
    assert!(err.starts_with("subject:"), "{err}");
}

#[test]
fn unparsable_template_is_a_validation_error() {
    let bad = json!({"body": "Hello {{ entity.name "});
    let err = check_params(bad.as_object().expect("an object")).expect_err("should fail");
    assert_eq!(err.field.as_deref(), Some("body"));
}

#[test]
fn reserved_names_are_refused_at_save() {
    for source in [
        "{{ __switchyard_add(1, 2) }}",
        "{% set __switchyard_concat = 1 %}",
        "{% macro __switchyard_mul() %}{% endmacro %}",
    ] {
        let params = json!({ "body": source });
        let err = check_params(params.as_object().expect("an object")).expect_err(source);
        assert!(
            err.message.contains("reserved"),
            "{source}: {}",
            err.message
        );
    }
}

#[test]
fn runaway_template_is_stopped_by_fuel() {
    refused(
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        "fuel",
    );
}

#[test]
fn operators_keep_their_meaning() {
    let out = run(concat!(
        r#"{{ "a" ~ "b" }}|{{ 1 + 2 }}|{{ [1] + [2] }}|{{ "ab" * 2 }}|{{ "hello"[1:3] }}|"#,
        r#"{{ [1, 2, 3][::-1] }}|{{ 3 > 2 }}|{{ "b" in "abc" }}|{{ {"a": 1}["a"] }}|"#,
        r#"{{ 1 < 2 < 3 }}|{{ 7 // 2 }}|{{ 2 ** 3 }}|{{ -(1) }}|{{ entity.big[:3] }}|{{ entity.big|length }}"#,
    ))
    .expect("renders");
    assert_eq!(
        out,
        "ab|3|[1, 2]|abab|el|[3, 2, 1]|True|True|1|True|3|8|-1|xxx|1048576"
    );
}

#[test]
fn statements_keep_their_meaning() {
    let out = run(concat!(
        "{% macro line(item) %}{{ item.sku }}x{{ item.qty }}{% endmacro %}",
        "{% for item in entity.items %}{{ loop.index }}:{{ line(item) }} {% else %}none{% endfor %}",
        "{% set caught %}[{{ entity.id|upper }}]{% endset %}{{ caught }}",
        "{% filter lower %}ABC{% endfilter %}",
        "{% set ns = namespace(total=0) %}{% for i in entity.items %}{% set ns.total = ns.total + i.qty %}{% endfor %}{{ ns.total }}",
        "{% for x in [[1, [2]], [3]] recursive %}{% if x is sequence %}{{ loop(x) }}{% else %}{{ x }}{% endif %}{% endfor %}",
    ))
    .expect("renders");
    assert_eq!(out, "1:ax2 2:bx1 [ORD_1]abc3123");
}

#[test]
fn html_parameters_escape_values_but_not_the_template_text() {
    let out = render_html(
        "<p>{{ name }}</p>{{ '<i>'|safe }}",
        &json!({"name": "<b>"}),
        &TemplateLimits::default(),
    )
    .expect("renders");
    assert_eq!(out, "<p>&lt;b&gt;</p><i>");
}

#[test]
fn builtins_work_within_the_limits() {
    let out = run(concat!(
        "{{ [1, 2, 3]|batch(2)|list }}|{{ 'a\nb'|indent(2) }}|{{ ['a', 'b']|join(', ') }}|",
        "{{ '%5s'|format('x') }}|{{ 'aXa'|replace('X', 'yy') }}|{{ {'b': 1, 'a': 2}|dictsort }}|",
        "{{ 'a,b'|split(',')|list }}|{{ range(3)|list }}|{{ {'a': [1]}|tojson }}|{{ 'ab'|list }}|",
        "{{ [1, 2, 3]|slice(2)|list }}|{{ 'x' is startingwith 'x' }}|{{ entity.items|map(attribute='sku')|join }}",
    ))
    .expect("renders");
    assert_eq!(
        out,
        "[[1, 2], [3]]|a\n  b|a, b|    x|ayya|[[\"a\", 2], [\"b\", 1]]|[\"a\", \"b\"]|[0, 1, 2]|{\"a\":[1]}|[\"a\", \"b\"]|[[1, 2], [3]]|True|ab"
    );
}

#[test]
fn filters_that_allocate_by_their_argument_are_bounded() {
    for source in [
        "{{ [1]|batch(100000000000) }}",
        "{{ [1]|slice(100000000000) }}",
        "{{ 'a\nb'|indent(100000000) }}",
        "{{ 'a'|indent(width=100000000) }}",
        "{{ [1, 2, 3]|join('x' * 200000) }}",
        "{{ '%99999999s'|format('a') }}",
        "{{ '%.*f'|format(99999999, 1.5) }}",
        "{{ ('x' * 1000)|replace('x', 'y' * 1000) }}",
        "{{ ('x' * 1000)|replace('', 'y' * 1000) }}",
        "{{ [[[[1]]]]|tojson(indent=100000000) }}",
        "{{ ('a,' * 100000)|split(',')|length }}",
        "{{ ('\n' * 100000)|lines|length }}",
        "{{ range(100000)|length }}",
    ] {
        refused(source, SIZE_LIMIT);
    }
}

#[test]
fn constant_folding_is_bounded_at_save() {
    for source in [
        "{{ 'x' * 99999999 }}",
        "{{ ('x' * 1000 * 1000) ~ ('x' * 1000 * 1000) }}",
        "{{ ([1] * 100000000) ~ '' }}",
        "{% if ('x' * 99999999) == '' %}{% endif %}",
        "{% for i in [1] %}{{ [['x' * 50000000]] }}{% endfor %}",
    ] {
        let params = json!({ "body": source });
        let err = check_params(params.as_object().expect("an object")).expect_err(source);
        assert!(
            err.message.contains(SIZE_LIMIT),
            "{source}: {}",
            err.message
        );
    }
}

#[test]
fn entity_data_is_no_way_around_the_cap() {
    for source in [
        "{{ entity.big|list|length }}",
        "{{ entity.big|reverse }}",
        "{{ entity.big|upper }}",
        "{{ entity.big|escape }}",
        "{{ entity.big|urlencode }}",
        "{{ entity.big|string }}",
        "{{ entity.big|tojson }}",
        "{{ entity|pprint }}",
        "{{ entity.big|chain(entity.big)|length }}",
        "{{ entity.big|zip(entity.big)|length }}",
        "{{ entity.big|trim }}",
        "{{ entity.big[1:] }}",
        "{{ entity.big[::-1] }}",
        "{{ entity.big ~ '' }}",
        "{{ entity.big }}",
        "{{ entity }}",
        "{{ dict(a=entity.big) }}",
    ] {
        refused(source, SIZE_LIMIT);
    }
}

#[test]
fn operators_that_allocate_by_their_operands_are_bounded() {
    for source in [
        "{{ 'x' * 100000000 }}",
        "{{ 100000000 * 'x' }}",
        "{{ ([1] * 100000000)|length }}",
        &format!(
            "{{% set s = 'x' * 1000 %}}{}",
            "{% set s = s ~ s %}".repeat(40)
        ),
        &format!(
            "{{% set s = 'x' * 1000 %}}{}",
            "{% set s = s + s %}".repeat(40)
        ),
        &format!(
            "{{% set l = [1] %}}{}{{{{ l|length }}}}",
            "{% set l = l + l %}".repeat(40)
        ),
        "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% for i in range(3000) %}{{ 'x' * 100 }}{% endfor %}",
        "{% for i in range(5000) %}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{% endfor %}",
    ] {
        refused(source, SIZE_LIMIT);
    }
}

#[test]
fn captures_and_recursive_macros_are_bounded() {
    // Each level doubles what the one below wrote into its capture.
    refused(
        "{% macro m(n) %}{% if n > 0 %}{{ m(n - 1) }}{{ m(n - 1) }}{% else %}{{ 'x' * 200000 }}{% endif %}{% endmacro %}{{ m(3)|length }}",
        SIZE_LIMIT,
    );
    refused(
        "{% set x %}{% for i in range(10000) %}{{ 'y' * 200 }}{% endfor %}{% endset %}{{ x|length }}",
        SIZE_LIMIT,
    );
    // Unbounded recursion stops at the recursion limit.
    let err = run("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}").expect_err("recursion");
    assert!(err.contains("recursion"), "{err}");
}

#[test]
fn scanning_work_is_bounded() {
    for source in [
        "{% for i in range(10000) %}{% if entity.big == entity.big2 %}{% endif %}{% endfor %}",
        "{% for i in range(10000) %}{% if 'zz' in entity.big %}{% endif %}{% endfor %}",
        "{% for i in range(10000) %}{% if entity.big is startingwith 'y' %}{% endif %}{% endfor %}",
        "{% for i in range(10000) %}{{ entity.big|length }}{% endfor %}",
        "{% for i in range(10000) %}{{ entity.big[500000] }}{% endfor %}",
    ] {
        refused(source, "work limit");
    }
}

#[test]
fn the_limit_follows_the_setting() {
    let small = TemplateLimits {
        max_rendered_bytes: 10,
    };
    let err = render("{{ 'x' * 11 }}", &json!({}), &small).expect_err("past 10 bytes");
    assert!(err.contains("limit of 10 bytes"), "{err}");
    assert_eq!(
        render("{{ 'x' * 10 }}", &json!({}), &small).expect("10 bytes"),
        "xxxxxxxxxx"
    );
    let err = render("{{ 'x' }}{{ 'x' * 10 }}", &json!({}), &small).expect_err("11 bytes out");
    assert!(err.contains("limit of 10 bytes"), "{err}");
}
