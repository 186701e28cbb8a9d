//! [`ColSet`]: the base columns of a lineage, a sorted set kept inline
//! while it holds one or two columns (most lineages: a column reference, a
//! comparison of two), so resolving and combining them allocates nothing.

use std::collections::BTreeSet;

use smallvec::SmallVec;

use crate::catalog::ColumnId;

/// A set of base columns, iterated in order (as a `BTreeSet` would be).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ColSet(SmallVec<[ColumnId; 2]>);

impl ColSet {
    /// The set of one column.
    pub fn one(col: ColumnId) -> ColSet {
        let mut v = SmallVec::new();
        v.push(col);
        ColSet(v)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The columns, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, ColumnId> {
        self.0.iter()
    }

    /// Adds every column of `other`.
    pub fn union(&mut self, other: ColSet) {
        if self.0.is_empty() {
            *self = other;
        } else {
            self.extend(other.0);
        }
    }
}

impl Extend<ColumnId> for ColSet {
    fn extend<I: IntoIterator<Item = ColumnId>>(&mut self, iter: I) {
        let before = self.0.len();
        self.0.extend(iter);
        if self.0.len() != before {
            self.0.sort_unstable();
            self.0.dedup();
        }
    }
}

impl<'s> Extend<&'s ColumnId> for ColSet {
    fn extend<I: IntoIterator<Item = &'s ColumnId>>(&mut self, iter: I) {
        self.extend(iter.into_iter().copied());
    }
}

impl FromIterator<ColumnId> for ColSet {
    fn from_iter<I: IntoIterator<Item = ColumnId>>(iter: I) -> ColSet {
        let mut set = ColSet::default();
        set.extend(iter);
        set
    }
}

impl From<BTreeSet<ColumnId>> for ColSet {
    fn from(set: BTreeSet<ColumnId>) -> ColSet {
        ColSet(set.into_iter().collect())
    }
}

impl From<ColSet> for BTreeSet<ColumnId> {
    /// Inserted one by one: `collect` would first gather and sort them in
    /// a `Vec` of its own, an allocation more for what is already sorted.
    fn from(set: ColSet) -> BTreeSet<ColumnId> {
        let mut out = BTreeSet::new();
        for col in set.0 {
            out.insert(col);
        }
        out
    }
}

impl IntoIterator for ColSet {
    type Item = ColumnId;
    type IntoIter = smallvec::IntoIter<[ColumnId; 2]>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'s> IntoIterator for &'s ColSet {
    type Item = &'s ColumnId;
    type IntoIter = std::slice::Iter<'s, ColumnId>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(rel: u32, attnum: i16) -> ColumnId {
        ColumnId { rel, attnum }
    }

    #[test]
    fn iterates_like_a_btreeset_whatever_the_insertion_order() {
        let cols = [c(3, 1), c(1, 2), c(1, 1), c(3, 1), c(2, 7), c(1, 2)];
        let mut set = ColSet::default();
        let mut reference = BTreeSet::new();
        for col in cols {
            set.extend([col]);
            reference.insert(col);
            assert_eq!(
                set.iter().copied().collect::<Vec<_>>(),
                reference.iter().copied().collect::<Vec<_>>()
            );
        }
        let mut other = ColSet::one(c(0, 5));
        other.union(set.clone());
        reference.insert(c(0, 5));
        assert_eq!(BTreeSet::from(other), reference);
        assert_eq!(
            ColSet::from(reference.clone())
                .into_iter()
                .collect::<BTreeSet<_>>(),
            reference
        );
        let mut empty = ColSet::default();
        empty.union(set.clone());
        assert_eq!(empty, set);
    }
}
