//! The query of a JSON:API request as the newer peers write it (contract-head §8): paging by
//! `page[number]` and `page[size]`, sparse fieldsets by `fields[drops]`, and links that keep
//! every other parameter of the request.

use std::collections::BTreeSet;

/// The default and largest page.
pub const MAX_PAGE_SIZE: usize = 250;

/// A request's query, parsed: the page asked for, the attributes asked for, and the other
/// parameters as they came (in order), which every link keeps.
#[derive(Debug, PartialEq, Eq)]
pub struct ListQuery {
    pub number: usize,
    pub size: usize,
    pub fields: Option<Fields>,
    kept: Vec<(String, String)>,
}

/// `fields[drops]`: the attributes to show, each one the resource has.
#[derive(Debug, PartialEq, Eq)]
pub struct Fields(BTreeSet<String>);

impl Fields {
    /// `text` is a comma-separated list of names out of `known` (empty: no attribute at all).
    fn parse(text: &str, known: &BTreeSet<String>) -> Result<Fields, String> {
        let names = text.split(',').filter(|name| !name.is_empty());
        let mut fields = BTreeSet::new();
        for name in names {
            if !known.contains(name) {
                return Err(format!(
                    "fields[drops]: {name:?} is not an attribute of drops"
                ));
            }
            fields.insert(name.to_owned());
        }
        Ok(Fields(fields))
    }

    /// Keeps only the attributes asked for.
    pub fn select(&self, attributes: &mut serde_json::Map<String, serde_json::Value>) {
        attributes.retain(|name, _| self.0.contains(name));
    }
}

impl ListQuery {
    /// Reads the query's pairs; `known` are the attributes a resource has. `limit` is refused:
    /// a client that pages by it would silently get 250 at a time.
    pub fn parse(pairs: Vec<(String, String)>, known: &BTreeSet<String>) -> Result<Self, String> {
        let mut query = ListQuery {
            number: 1,
            size: MAX_PAGE_SIZE,
            fields: None,
            kept: Vec::new(),
        };
        for (name, value) in pairs {
            match name.as_str() {
                "page[number]" => query.number = parse_count(&value, &name)?,
                "page[size]" => query.size = parse_count(&value, &name)?,
                "fields[drops]" => query.fields = Some(Fields::parse(&value, known)?),
                "limit" => {
                    return Err("limit is not a parameter here: page with page[size]".to_owned())
                }
                _ => {}
            }
            if !name.starts_with("page[") {
                query.kept.push((name, value));
            }
        }
        if query.number == 0 {
            return Err("page[number] starts at 1".to_owned());
        }
        if !(1..=MAX_PAGE_SIZE).contains(&query.size) {
            return Err(format!("page[size] must be from 1 to {MAX_PAGE_SIZE}"));
        }
        Ok(query)
    }

    /// The link to page `number` of `path`: the request's other parameters kept, in order, the
    /// page parameters set (the brackets percent-encoded, as form encoding writes them).
    pub fn href(&self, path: &str, number: usize) -> String {
        let number = number.to_string();
        let size = self.size.to_string();
        let page = [
            ("page[number]", number.as_str()),
            ("page[size]", size.as_str()),
        ];
        let kept = self.kept.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let query = serde_urlencoded::to_string(kept.chain(page).collect::<Vec<_>>())
            .expect("pairs of text encode");
        format!("{path}?{query}")
    }
}

/// A page number or size: a whole number, else a 400 naming the parameter.
fn parse_count(text: &str, name: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| format!("{name} {text:?} is not a whole number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> BTreeSet<String> {
        ["itemId", "quantity", "meso"].map(str::to_owned).into()
    }

    fn parse(query: &str) -> Result<ListQuery, String> {
        ListQuery::parse(serde_urlencoded::from_str(query).unwrap(), &known())
    }

    #[test]
    fn pages_default_to_the_first_of_250_and_are_bounded() {
        let query = parse("").unwrap();
        assert_eq!((query.number, query.size, query.fields), (1, 250, None));
        let query = parse("page%5Bnumber%5D=3&page[size]=2").unwrap();
        assert_eq!((query.number, query.size), (3, 2));
        for bad in [
            "page[number]=0",
            "page[size]=0",
            "page[size]=251",
            "page[number]=x",
            "page[size]=-3",
            "limit=5",
            "fields[drops]=itemId,nope",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn links_keep_the_other_parameters_and_set_the_page() {
        let query =
            parse("fields[drops]=itemId,quantity&page[number]=2&x=a%20b&page[size]=5").unwrap();
        assert_eq!(
            query.href("/api/worlds/1/channels/2/maps/3/drops", 7),
            "/api/worlds/1/channels/2/maps/3/drops?fields%5Bdrops%5D=itemId%2Cquantity&x=a+b\
             &page%5Bnumber%5D=7&page%5Bsize%5D=5"
        );
    }

    #[test]
    fn fields_select_the_attributes_asked_for() {
        let query = parse("fields[drops]=quantity,itemId").unwrap();
        let mut attributes = serde_json::json!({"itemId": 1, "quantity": 2, "meso": 0});
        query
            .fields
            .unwrap()
            .select(attributes.as_object_mut().unwrap());
        assert_eq!(attributes, serde_json::json!({"itemId": 1, "quantity": 2}));
        let none = parse("fields[drops]=").unwrap().fields.unwrap();
        let mut attributes = serde_json::json!({"itemId": 1});
        none.select(attributes.as_object_mut().unwrap());
        assert_eq!(attributes, serde_json::json!({}));
    }
}
