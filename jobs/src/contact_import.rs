//! Importing contacts from CSV, streamed: rows are read one at a time and written in batches, so
//! a file of any length needs the memory of one batch. Contacts are upserted by phone; a row
//! whose number is not E.164 is reported with its line and skipped, never silently.

use std::collections::HashMap;

use chrono::Utc;
use futures::StreamExt;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;
use waflow_entities::{E164, contact};

use super::contacts::{ContactService, MAX_ATTRIBUTE_BYTES, MAX_ATTRIBUTE_NAME, MAX_ATTRIBUTES};
use crate::error::{Error, Result};

/// Rows written per transaction.
pub const BATCH: usize = 500;
/// Invalid rows reported one by one; beyond that only counted.
pub const MAX_REPORTED: usize = 1000;
/// Columns a file may have: phone, name, tags and attributes.
pub const MAX_COLUMNS: usize = 3 + MAX_ATTRIBUTES;
/// Bytes of one line of the file, read before it is parsed: room for every column at its limit,
/// and no more, so that one row cannot fill the server's memory.
pub const MAX_LINE_BYTES: usize = 512 * 1024;
/// Characters of a cell echoed in the report of an invalid row.
const ECHOED_CHARS: usize = 64;

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

/// One valid row: the contact it upserts. The number is parsed once, here: parsing is most of
/// the cost of a row.
struct Row {
    line: u64,
    phone: E164,
    /// `E164::customer_key` of `phone`: the same customer in any of its forms.
    key: String,
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
                phone: echo(phone),
                reason: echo_long(&reason),
            });
        }
    }
}

/// One key for every form of a stored contact's number (`E164::customer_key`); the number
/// itself when it cannot be read (a contact stored before the rules changed).
fn stored_customer_key(phone: &str) -> String {
    E164::parse(phone).map_or_else(|_| phone.to_owned(), |p| p.customer_key())
}

/// A cell as the report shows it: its first characters.
fn echo(cell: &str) -> String {
    match cell.char_indices().nth(ECHOED_CHARS) {
        Some((end, _)) => format!("{}…", &cell[..end]),
        None => cell.to_owned(),
    }
}

/// A reason, which may quote a cell: kept to a few lines.
fn echo_long(reason: &str) -> String {
    match reason.char_indices().nth(4 * ECHOED_CHARS) {
        Some((end, _)) => format!("{}…", &reason[..end]),
        None => reason.to_owned(),
    }
}

/// The file as read, failing at the first line longer than `MAX_LINE_BYTES` (the parser would
/// hold it whole): that line's number is kept in `overlong`, and the file ends there.
struct LineLimit<R> {
    inner: R,
    line: u64,
    line_bytes: usize,
    overlong: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for LineLimit<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::sync::atomic::Ordering;
        if self.overlong.load(Ordering::Relaxed) != 0 {
            return std::task::Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = &polled {
            let (mut line, mut line_bytes) = (self.line, self.line_bytes);
            for byte in &buf.filled()[before..] {
                if *byte == b'\n' {
                    line += 1;
                    line_bytes = 0;
                } else {
                    line_bytes += 1;
                    if line_bytes > MAX_LINE_BYTES {
                        self.overlong.store(line + 1, Ordering::Relaxed);
                        buf.set_filled(before);
                        return std::task::Poll::Ready(Err(std::io::Error::other(
                            "a line too long",
                        )));
                    }
                }
            }
            (self.line, self.line_bytes) = (line, line_bytes);
        }
        polled
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
        let overlong = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let limited = LineLimit {
            inner: source,
            line: 0,
            line_bytes: 0,
            overlong: overlong.clone(),
        };
        let mut reader = csv_async::AsyncReaderBuilder::new()
            .flexible(true)
            .trim(csv_async::Trim::All)
            .create_reader(limited);
        let headers = reader
            .headers()
            .await
            .map_err(|e| Error::field("csv", format!("the header row cannot be read: {e}")))?
            .clone();
        if headers.len() > MAX_COLUMNS {
            return Err(Error::field(
                "csv",
                format!(
                    "the header row has {} columns; a file has at most {MAX_COLUMNS} (phone, name, \
                     tags and {MAX_ATTRIBUTES} attributes)",
                    headers.len()
                ),
            ));
        }
        if let Some(long) = headers
            .iter()
            .find(|h| h.chars().count() > MAX_ATTRIBUTE_NAME)
        {
            return Err(Error::field(
                "csv",
                format!(
                    "the column name {:?} is over {MAX_ATTRIBUTE_NAME} characters",
                    echo(long)
                ),
            ));
        }
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
                Err(_) if overlong.load(std::sync::atomic::Ordering::Relaxed) != 0 => {
                    let line = overlong.load(std::sync::atomic::Ordering::Relaxed);
                    let reason = format!(
                        "the line is longer than {} KiB: the import stopped there (a row is at \
                         most {MAX_COLUMNS} columns of {MAX_ATTRIBUTE_BYTES} bytes)",
                        MAX_LINE_BYTES / 1024
                    );
                    report.reject(line, "", reason);
                    break;
                }
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
            let attributes: Map<String, Value> = headers
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != phone_at && Some(*i) != name_at && Some(*i) != tags_at)
                .filter_map(|(i, h)| {
                    let value = record.get(i).filter(|v| !v.is_empty())?;
                    Some((h.to_owned(), Value::String(value.to_owned())))
                })
                .collect();
            if let Some(problem) = super::contacts::attribute_problem(&attributes) {
                report.reject(line, raw, problem);
                continue;
            }
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
                line,
                tags,
                key: phone.customer_key(),
                phone,
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
            match at.get(&row.key) {
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
                    at.insert(row.key.clone(), merged.len());
                    merged.push(row);
                }
            }
        }
        let txn = crate::db::begin_write(&self.services.db).await?;
        // Contacts stored in any form of the rows' customers (see `E164::equivalents`), by
        // customer.
        let forms: Vec<String> = merged.iter().flat_map(|r| r.phone.equivalents()).collect();
        let mut existing: HashMap<String, contact::Model> = contact::Entity::find()
            .filter(contact::Column::WorkspaceId.eq(workspace_id))
            .filter(crate::db::one_of(
                txn.get_database_backend(),
                contact::Column::Phone,
                forms,
            ))
            .all(&txn)
            .await?
            .into_iter()
            .filter_map(|c| Some((stored_customer_key(c.phone.as_deref()?), c)))
            .collect();
        let now = Utc::now();
        let mut new = Vec::new();
        let mut tagged: Vec<(Uuid, Vec<String>)> = Vec::new();
        for row in merged {
            match existing.remove(&row.key) {
                Some(found) => {
                    let mut attributes = match &found.attributes {
                        Value::Object(map) => map.clone(),
                        _ => Map::new(),
                    };
                    attributes.extend(row.attributes);
                    // The file's attributes beside the contact's own: together still bounded.
                    if let Some(problem) = super::contacts::attribute_problem(&attributes) {
                        report.reject(row.line, row.phone.as_str(), problem);
                        continue;
                    }
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
                        phone: Set(Some(row.phone.to_string())),
                        wa_id: Set(None),
                        user_id: Set(None),
                        username: Set(None),
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
