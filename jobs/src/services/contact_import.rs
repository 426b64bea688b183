//! Importing contacts from CSV, streamed: rows are read one at a time and written in batches, so
//! a file of any length needs the memory of one batch. Contacts are upserted by phone; a row
//! whose number is not E.164 is reported with its line and skipped, never silently.

use std::collections::HashMap;

use chrono::Utc;
use futures::StreamExt;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;
use waflow_entities::{E164, contact};

use super::contacts::ContactService;
use crate::error::{Error, Result};

/// Rows written per transaction.
pub const BATCH: usize = 500;
/// Invalid rows reported one by one; beyond that only counted.
pub const MAX_REPORTED: usize = 1000;

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub created: u64,
    pub updated: u64,
    pub invalid: Vec<InvalidRow>,
    /// Every invalid row, reported or not.
    pub invalid_count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct InvalidRow {
    pub line: u64,
    pub phone: String,
    pub reason: String,
}

/// One valid row: the contact it upserts.
struct Row {
    phone: String,
    name: Option<String>,
    attributes: Map<String, Value>,
    /// Added to the contact's tags.
    tags: Vec<String>,
}

impl ImportReport {
    fn reject(&mut self, line: u64, phone: &str, reason: String) {
        self.invalid_count += 1;
        if self.invalid.len() < MAX_REPORTED {
            self.invalid.push(InvalidRow {
                line,
                phone: phone.to_owned(),
                reason,
            });
        }
    }
}

impl ContactService<'_> {
    /// Imports a CSV with a header row: `phone` (required), `name`, `tags` (separated by `;`,
    /// added to the contact's), and any other column into the contact's attributes. Existing contacts keep what a row leaves empty.
    pub async fn import_csv(
        &self,
        workspace_id: Uuid,
        source: impl tokio::io::AsyncRead + Unpin + Send,
    ) -> Result<ImportReport> {
        let mut reader = csv_async::AsyncReaderBuilder::new()
            .flexible(true)
            .trim(csv_async::Trim::All)
            .create_reader(source);
        let headers = reader
            .headers()
            .await
            .map_err(|e| Error::field("csv", format!("the header row cannot be read: {e}")))?
            .clone();
        let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let phone_at = column("phone")
            .ok_or_else(|| Error::field("csv", "the header row has no `phone` column"))?;
        let name_at = column("name");
        let tags_at = column("tags");
        let mut report = ImportReport::default();
        let mut batch: Vec<Row> = Vec::with_capacity(BATCH);
        let mut records = reader.records();
        while let Some(record) = records.next().await {
            let record = match record {
                Ok(record) => record,
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    report.reject(line, "", format!("the row cannot be read: {e}"));
                    continue;
                }
            };
            let line = record.position().map_or(0, |p| p.line());
            let raw = record.get(phone_at).unwrap_or_default();
            let phone = match E164::parse(raw) {
                Ok(phone) => phone,
                Err(e) => {
                    report.reject(line, raw, e.to_string());
                    continue;
                }
            };
            let attributes = headers
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != phone_at && Some(*i) != name_at && Some(*i) != tags_at)
                .filter_map(|(i, h)| {
                    let value = record.get(i).filter(|v| !v.is_empty())?;
                    Some((h.to_owned(), Value::String(value.to_owned())))
                })
                .collect();
            let tags: Vec<String> = tags_at
                .and_then(|i| record.get(i))
                .map(|cell| {
                    cell.split(';')
                        .map(str::to_owned)
                        .filter(|t| !t.trim().is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let tags = match super::contacts::clean_tags(&tags, "tags") {
                Ok(tags) => tags,
                Err(e) => {
                    report.reject(line, raw, e.public_message());
                    continue;
                }
            };
            batch.push(Row {
                tags,
                phone: phone.to_string(),
                name: name_at
                    .and_then(|i| record.get(i))
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
                attributes,
            });
            if batch.len() == BATCH {
                self.write_batch(workspace_id, std::mem::take(&mut batch), &mut report)
                    .await?;
            }
        }
        if !batch.is_empty() {
            self.write_batch(workspace_id, batch, &mut report).await?;
        }
        Ok(report)
    }

    async fn write_batch(
        &self,
        workspace_id: Uuid,
        rows: Vec<Row>,
        report: &mut ImportReport,
    ) -> Result<()> {
        // A phone twice in the file: the later row updates what the earlier one wrote.
        let mut merged: Vec<Row> = Vec::with_capacity(rows.len());
        let mut at: HashMap<String, usize> = HashMap::new();
        for row in rows {
            match at.get(&row.phone) {
                Some(&i) => {
                    report.updated += 1;
                    let earlier = &mut merged[i];
                    if row.name.is_some() {
                        earlier.name = row.name;
                    }
                    earlier.attributes.extend(row.attributes);
                    earlier.tags.extend(row.tags);
                }
                None => {
                    at.insert(row.phone.clone(), merged.len());
                    merged.push(row);
                }
            }
        }
        let txn = crate::db::begin_write(&self.services.db).await?;
        let phones: Vec<&str> = merged.iter().map(|r| r.phone.as_str()).collect();
        let mut existing: HashMap<String, contact::Model> = contact::Entity::find()
            .filter(contact::Column::WorkspaceId.eq(workspace_id))
            .filter(contact::Column::Phone.is_in(phones))
            .all(&txn)
            .await?
            .into_iter()
            .map(|c| (c.phone.clone(), c))
            .collect();
        let now = Utc::now();
        let mut new = Vec::new();
        let mut tagged: Vec<(Uuid, Vec<String>)> = Vec::new();
        for row in merged {
            match existing.remove(&row.phone) {
                Some(found) => {
                    let mut attributes = match &found.attributes {
                        Value::Object(map) => map.clone(),
                        _ => Map::new(),
                    };
                    attributes.extend(row.attributes);
                    let mut model: contact::ActiveModel = found.into();
                    if row.name.is_some() {
                        model.name = Set(row.name);
                    }
                    model.attributes = Set(Value::Object(attributes));
                    model.updated_at = Set(now);
                    let updated = model.update(&txn).await?;
                    tagged.push((updated.id, row.tags));
                    report.updated += 1;
                }
                None => {
                    let id = Uuid::now_v7();
                    tagged.push((id, row.tags));
                    new.push(contact::ActiveModel {
                        id: Set(id),
                        workspace_id: Set(workspace_id),
                        phone: Set(row.phone),
                        name: Set(row.name),
                        attributes: Set(Value::Object(row.attributes)),
                        opted_out: Set(false),
                        opted_out_at: Set(None),
                        created_at: Set(now),
                        updated_at: Set(now),
                    });
                }
            }
        }
        report.created += new.len() as u64;
        if !new.is_empty() {
            contact::Entity::insert_many(new)
                .exec_without_returning(&txn)
                .await?;
        }
        for (id, tags) in tagged.iter().filter(|(_, tags)| !tags.is_empty()) {
            super::contacts::set_tags(&txn, workspace_id, *id, tags, false).await?;
        }
        txn.commit().await?;
        Ok(())
    }
}
