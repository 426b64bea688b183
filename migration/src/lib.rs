//! Waflow's schema as numbered, reversible migrations. One set runs on SQLite and PostgreSQL, so
//! only portable constructs are used: string enums instead of native enum types, foreign keys
//! declared inside `CREATE TABLE` (SQLite cannot add them later), one change per `ALTER TABLE`.

use sea_orm_migration::prelude::*;

mod m0001_workspaces;
mod m0002_assistants;
mod m0003_senders_templates;
mod m0004_contacts;
mod m0005_conversations_messages;
mod m0006_flows;
mod m0007_webhooks;
mod m0008_sender_quality_override;
mod m0009_message_payload;
mod m0010_schedule_ticks;
mod m0011_ai_replies;
mod m0012_flow_engine;
mod m0013_contact_tags;
mod m0014_campaigns;
mod m0015_run_fencing;
mod m0016_erased_messages;
mod m0017_contact_wa_id;
mod m0018_customer_identity;
mod m0019_inbound;
mod m0020_campaign_template_parameters;
mod m0021_extraction_error;
mod m0022_concurrency_key_order;
mod m0023_key_lookup_index;
mod m0024_event_routes_version;
mod m0025_shared_version;

pub use sea_orm_migration::MigratorTrait;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_workspaces::Migration),
            Box::new(m0002_assistants::Migration),
            Box::new(m0003_senders_templates::Migration),
            Box::new(m0004_contacts::Migration),
            Box::new(m0005_conversations_messages::Migration),
            Box::new(m0006_flows::Migration),
            Box::new(m0007_webhooks::Migration),
            Box::new(m0008_sender_quality_override::Migration),
            Box::new(m0009_message_payload::Migration),
            Box::new(m0010_schedule_ticks::Migration),
            Box::new(m0011_ai_replies::Migration),
            Box::new(m0012_flow_engine::Migration),
            Box::new(m0013_contact_tags::Migration),
            Box::new(m0014_campaigns::Migration),
            Box::new(m0015_run_fencing::Migration),
            Box::new(m0016_erased_messages::Migration),
            Box::new(m0017_contact_wa_id::Migration),
            Box::new(m0018_customer_identity::Migration),
            Box::new(m0019_inbound::Migration),
            Box::new(m0020_campaign_template_parameters::Migration),
            Box::new(m0021_extraction_error::Migration),
            Box::new(m0022_concurrency_key_order::Migration),
            Box::new(m0023_key_lookup_index::Migration),
            Box::new(m0024_event_routes_version::Migration),
            Box::new(m0025_shared_version::Migration),
        ]
    }
}

/// A foreign key to `workspace.id` that removes the row with its workspace.
pub(crate) fn workspace_fk(table: impl IntoIden + Clone + 'static) -> ForeignKeyCreateStatement {
    fk(
        table,
        "workspace_id",
        m0001_workspaces::Workspace::Table,
        ForeignKeyAction::Cascade,
    )
}

/// A foreign key from `table.column` to `parent.id`.
pub(crate) fn fk(
    table: impl IntoIden + Clone + 'static,
    column: &'static str,
    parent: impl IntoIden + 'static,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, Alias::new(column))
        .to(parent, Alias::new("id"))
        .on_delete(on_delete)
        .to_owned()
}

/// An index named `idx_<table>_<columns>` so that `down` can drop it by the same name.
pub(crate) fn index(
    table: impl IntoIden + Clone + 'static,
    table_name: &str,
    columns: &[&'static str],
    unique: bool,
) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(format!("idx_{table_name}_{}", columns.join("_")))
        .table(table);
    for column in columns {
        stmt.col(Alias::new(*column));
    }
    if unique {
        stmt.unique();
    }
    stmt.to_owned()
}
