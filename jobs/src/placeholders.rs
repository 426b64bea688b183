//! WhatsApp template placeholders: either numbered (`{{1}}`..`{{n}}`, without gaps) or named
//! (`{{customer_name}}`), never both in one text, as Meta's review requires. One parser serves
//! validation on create and rendering on send.

use std::{collections::BTreeMap, sync::LazyLock};

use regex::Regex;

static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{\{\s*([^{}]*?)\s*\}\}").unwrap());
static NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z_][a-z0-9_]*$").unwrap());

pub use waflow_entities::enums::ParameterFormat;

/// The placeholders of one text, in the order a sender supplies their values: `1..n` for
/// positional ones, order of first appearance for named ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholders {
    pub format: ParameterFormat,
    pub names: Vec<String>,
}

impl Placeholders {
    pub fn count(&self) -> usize {
        self.names.len()
    }

    /// Parses `text`; the error says what is wrong in words a template author understands.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut numbers = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for capture in PLACEHOLDER.captures_iter(text) {
            let inner = &capture[1];
            if let Ok(n) = inner.parse::<usize>() {
                if n == 0 {
                    return Err("placeholders are numbered from {{1}}".into());
                }
                numbers.push(n);
            } else if NAME.is_match(inner) {
                if !names.iter().any(|n| n == inner) {
                    names.push(inner.to_owned());
                }
            } else {
                return Err(format!(
                    "placeholder {} must be a number like {{{{1}}}} or a lowercase name like {{{{customer_name}}}}",
                    &capture[0]
                ));
            }
        }
        match (numbers.is_empty(), names.is_empty()) {
            (false, false) => Err("use either numbered or named placeholders, not both".into()),
            (true, false) => Ok(Self {
                format: ParameterFormat::Named,
                names,
            }),
            _ => {
                numbers.sort_unstable();
                numbers.dedup();
                let n = numbers.len();
                if numbers.last().is_some_and(|&max| max != n) {
                    return Err(format!(
                        "placeholders must be numbered {{{{1}}}} to {{{{{n}}}}} without gaps"
                    ));
                }
                Ok(Self {
                    format: ParameterFormat::Positional,
                    names: (1..=n).map(|i| i.to_string()).collect(),
                })
            }
        }
    }
}

/// Fills every placeholder of `text` from `values` (keyed by number or name). A missing value
/// leaves the placeholder as written; callers check completeness before rendering.
pub fn render(text: &str, values: &BTreeMap<String, String>) -> String {
    PLACEHOLDER
        .replace_all(text, |capture: &regex::Captures<'_>| {
            values
                .get(&capture[1])
                .cloned()
                .unwrap_or_else(|| capture[0].to_owned())
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_placeholders_in_number_order() {
        let p = Placeholders::parse("Hi {{2}}, {{1}} and {{ 2 }}").unwrap();
        assert_eq!(p.format, ParameterFormat::Positional);
        assert_eq!(p.names, ["1", "2"]);
        assert_eq!(Placeholders::parse("none").unwrap().count(), 0);
    }

    #[test]
    fn named_placeholders_in_order_of_appearance() {
        let p = Placeholders::parse("Hi {{customer_name}}, see {{doctor}} ({{customer_name}})")
            .unwrap();
        assert_eq!(p.format, ParameterFormat::Named);
        assert_eq!(p.names, ["customer_name", "doctor"]);
    }

    #[test]
    fn refuses_gaps_zero_mixtures_and_odd_names() {
        for bad in [
            "{{2}}",
            "{{1}} {{3}}",
            "{{0}}",
            "{{1}} {{name}}",
            "{{Name}}",
            "{{first name}}",
            "{{x.y}}",
        ] {
            assert!(Placeholders::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn renders_values_and_keeps_unknown_placeholders() {
        let values = BTreeMap::from([
            ("1".to_owned(), "Ana".to_owned()),
            ("2".to_owned(), "Dr. Lee".to_owned()),
        ]);
        assert_eq!(
            render("Hi {{1}}, {{ 2 }} sees you. {{3}}", &values),
            "Hi Ana, Dr. Lee sees you. {{3}}"
        );
    }
}

#[cfg(test)]
mod never_panics {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any template body parses or is refused with words, and renders without panicking;
        /// a flow expression over any text and data renders or fails with a message.
        #[test]
        fn rendering_any_template(
            text in crate::test_support::template_text(),
            data in crate::test_support::json(),
        ) {
            if let Ok(placeholders) = super::Placeholders::parse(&text) {
                let values: BTreeMap<String, String> =
                    placeholders.names.iter().map(|n| (n.clone(), format!("<{n}>"))).collect();
                let _ = super::render(&text, &values);
            }
            use crate::sandbox::render::{Request, Source, execute};
            let _ = execute(Request::Render {
                source: text.clone(),
                context: serde_json::json!({"trigger": data}),
            });
            let _ = execute(Request::Check { sources: vec![Source::Template(text)] });
        }
    }
}
