//! Keyset pagination for Relay connections. Ids are UUIDv7, so ordering by id is ordering by
//! creation time, and a cursor (the last id seen) stays valid while rows are added or removed.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};
use uuid::Uuid;

use crate::error::{Error, Result};

pub const DEFAULT_PAGE_SIZE: u64 = 20;
pub const MAX_PAGE_SIZE: u64 = 100;

#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub first: u64,
    pub after: Option<Uuid>,
}

impl PageRequest {
    /// Parses the Relay arguments: `first` between 0 and 100 (20 when absent), `after` a cursor
    /// this API handed out.
    pub fn parse(first: Option<i32>, after: Option<&str>) -> Result<Self> {
        let first = match first {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if (0..=MAX_PAGE_SIZE as i32).contains(&n) => n as u64,
            Some(_) => {
                return Err(Error::field(
                    "first",
                    format!("must be between 0 and {MAX_PAGE_SIZE}"),
                ));
            }
        };
        let after = after
            .map(|cursor| {
                Uuid::parse_str(cursor)
                    .map_err(|_| Error::field("after", "is not a cursor from this API"))
            })
            .transpose()?;
        Ok(Self { first, after })
    }
}

#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
        }
    }
}

/// Runs `select` one page at a time, ordered by `id_column`.
pub async fn paginate<E, C>(
    db: &impl ConnectionTrait,
    select: Select<E>,
    id_column: C,
    request: PageRequest,
) -> Result<Page<E::Model>>
where
    E: EntityTrait,
    C: ColumnTrait,
{
    let mut select = select.order_by_asc(id_column);
    if let Some(after) = request.after {
        select = select.filter(id_column.gt(after));
    }
    let mut items = select.limit(request.first + 1).all(db).await?;
    let has_next_page = items.len() as u64 > request.first;
    items.truncate(request.first as usize);
    Ok(Page {
        items,
        has_next_page,
        has_previous_page: request.after.is_some(),
    })
}
