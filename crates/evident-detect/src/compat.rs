//! Where evident brings RSigma 0.23 back to the Sigma specification, by rewriting
//! parsed rules before they are compiled. Each case is covered by `tests/language.rs`.
//!
//! - A rule without an `id` gets its `name` (else its title) as id: RSigma finds the
//!   rules a correlation counts through their ids, so an id-less rule never counted.
//! - A `temporal` or `temporal_ordered` correlation without a `condition` needs all its
//!   rules, as Sigma says; RSigma read it as any one of them (`gte: 1`). An explicit
//!   `gte: 1` is read the same way, as it is indistinguishable after parsing.
//! - `|base64offset` patterns are cut as pySigma cuts them: RSigma kept the last
//!   characters of each encoding, which depend on the byte after the value, so a value
//!   matched only at the very end of the encoded text.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsigma_parser::{
    ConditionOperator, CorrelationCondition, CorrelationRule, CorrelationType, Detection,
    DetectionItem, Modifier, SigmaRule, SigmaString, SigmaValue,
};

/// Rewrites a detection rule in place.
pub(crate) fn detection_rule(rule: &mut SigmaRule) {
    rule.id = rule
        .id
        .take()
        .or_else(|| rule.name.clone())
        .or_else(|| Some(rule.title.clone()));
    for detection in rule.detection.named.values_mut() {
        fix_detection(detection);
    }
}

/// Rewrites a correlation rule in place.
pub(crate) fn correlation_rule(rule: &mut CorrelationRule) {
    rule.id = rule
        .id
        .take()
        .or_else(|| rule.name.clone())
        .or_else(|| Some(rule.title.clone()));
    let temporal = matches!(
        rule.correlation_type,
        CorrelationType::Temporal | CorrelationType::TemporalOrdered
    );
    if let CorrelationCondition::Threshold {
        predicates,
        field: None,
        ..
    } = &mut rule.condition
        && temporal
        && predicates.as_slice() == [(ConditionOperator::Gte, 1)]
    {
        predicates[0].1 = rule.rules.len() as u64;
    }
}

fn fix_detection(detection: &mut Detection) {
    match detection {
        Detection::AllOf(items) => items.iter_mut().for_each(fix_item),
        Detection::AnyOf(all) | Detection::And(all) => all.iter_mut().for_each(fix_detection),
        Detection::ArrayMatch { body, .. } => fix_detection(body),
        Detection::Conditional { named, .. } => named.values_mut().for_each(fix_detection),
        Detection::Keywords(_) => {}
    }
}

/// `field|base64offset|contains: value` → `field|contains:` the three offset patterns.
fn fix_item(item: &mut DetectionItem) {
    let modifiers = &item.field.modifiers;
    let wide = modifiers
        .iter()
        .any(|m| matches!(m, Modifier::Wide | Modifier::Utf16 | Modifier::Utf16be));
    if wide || !modifiers.contains(&Modifier::Base64Offset) {
        return;
    }
    let plain: Option<Vec<String>> = item
        .values
        .iter()
        .map(|v| match v {
            SigmaValue::String(s) => s.as_plain(),
            _ => None,
        })
        .collect();
    let Some(plain) = plain else {
        return;
    };
    item.field
        .modifiers
        .retain(|m| !matches!(m, Modifier::Base64Offset | Modifier::Contains));
    item.field.modifiers.insert(0, Modifier::Contains);
    item.values = plain
        .iter()
        .flat_map(|value| offset_patterns(value.as_bytes()))
        .map(|p| SigmaValue::String(SigmaString::from_raw(&p)))
        .collect();
}

/// The base64 text of `value` at each of the three byte offsets, without the characters
/// that depend on what surrounds it (pySigma's `base64offset`).
pub(crate) fn offset_patterns(value: &[u8]) -> Vec<String> {
    const START: [usize; 3] = [0, 2, 3];
    const END_TRIM: [usize; 3] = [0, 3, 2];
    (0..3)
        .filter_map(|i| {
            let mut padded = vec![b' '; i];
            padded.extend_from_slice(value);
            let encoded = STANDARD.encode(&padded);
            let end = encoded.len() - END_TRIM[(value.len() + i) % 3];
            (START[i] < end).then(|| encoded[START[i]..end].to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn offset_patterns_are_the_stable_middle_of_each_alignment() {
        // pySigma's documented example for `http://`.
        assert_eq!(
            super::offset_patterns(b"http://"),
            ["aHR0cDovL", "h0dHA6Ly", "odHRwOi8v"]
        );
    }
}
