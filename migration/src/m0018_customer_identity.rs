//! Who a customer is, as WhatsApp says it, beside the number a business dials (and `wa_id`,
//! m0017):
//! - `user_id`: the business-scoped user id (BSUID, `US.1349…`) Meta gives every customer, and
//!   the only one a customer with a username and a hidden number has.
//! - `username`: that username.
//!
//! `phone` becomes optional (a username customer may have none); it stays unique per workspace,
//! and so does `user_id`. SQLite cannot drop a NOT NULL, so the column is replaced by a new one
//! (added, copied, the old dropped, renamed), which PostgreSQL runs just as well.

use sea_orm_migration::{
    prelude::*,
    schema::*,
    sea_orm::{ConnectionTrait, StatementBuilder},
};

use crate::m0004_contacts::Contact;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Column {
    UserId,
    Username,
    PhoneReplacement,
}

const PHONE_INDEX: &str = "idx_contact_workspace_id_phone";
const USER_ID_INDEX: &str = "idx_contact_workspace_id_user_id";

fn alter(stmt: &mut TableAlterStatement) -> TableAlterStatement {
    stmt.table(Contact::Table).to_owned()
}

/// Collects statements as SQL for the database at hand, to run as one batch.
struct Batch<'m> {
    manager: &'m SchemaManager<'m>,
    sql: Vec<String>,
}

impl<'m> Batch<'m> {
    fn new(manager: &'m SchemaManager<'m>) -> Self {
        Self {
            manager,
            sql: Vec::new(),
        }
    }

    fn then(mut self, statement: &impl StatementBuilder) -> Self {
        let backend = self.manager.get_database_backend();
        self.sql.push(backend.build(statement).sql);
        self
    }

    /// Runs the statements on one connection. Statement by statement, SQLite's pool ran the
    /// steps of the column swap on connections whose view of the schema lagged (seen: an index
    /// just dropped "already exists", a column just renamed still there).
    async fn run(self) -> Result<(), DbErr> {
        self.manager
            .get_connection()
            .execute_unprepared(&self.sql.join(";\n"))
            .await
            .map(|_| ())
    }
}

/// Replaces `phone` by a column of the same name made by `column` (named `phone_replacement`),
/// keeping every value.
fn replace_phone<'m>(batch: Batch<'m>, column: ColumnDef) -> Batch<'m> {
    let copy = Query::update()
        .table(Contact::Table)
        .value(Column::PhoneReplacement, Expr::col(Contact::Phone))
        .to_owned();
    let old_index = Index::drop()
        .name(PHONE_INDEX)
        .table(Contact::Table)
        .to_owned();
    let unique = crate::index(Contact::Table, "contact", &["workspace_id", "phone"], true);
    batch
        .then(&alter(Table::alter().add_column(column)))
        .then(&copy)
        .then(&old_index)
        .then(&alter(Table::alter().drop_column(Contact::Phone)))
        .then(&alter(
            Table::alter().rename_column(Column::PhoneReplacement, Contact::Phone),
        ))
        .then(&unique)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut batch = Batch::new(manager);
        for column in [Column::UserId, Column::Username] {
            batch = batch.then(&alter(Table::alter().add_column(string_null(column))));
        }
        let user_ids = crate::index(
            Contact::Table,
            "contact",
            &["workspace_id", "user_id"],
            true,
        );
        replace_phone(batch.then(&user_ids), string_null(Column::PhoneReplacement))
            .run()
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Customers known only by their user id have no number to keep.
        let phoneless = Query::delete()
            .from_table(Contact::Table)
            .and_where(Expr::col(Contact::Phone).is_null())
            .to_owned();
        // A NOT NULL column added to rows needs a default; every row gets its value right after.
        let required = string(Column::PhoneReplacement).default("").to_owned();
        let mut batch = replace_phone(Batch::new(manager).then(&phoneless), required).then(
            &Index::drop()
                .name(USER_ID_INDEX)
                .table(Contact::Table)
                .to_owned(),
        );
        for column in [Column::Username, Column::UserId] {
            batch = batch.then(&alter(Table::alter().drop_column(column)));
        }
        batch.run().await
    }
}
