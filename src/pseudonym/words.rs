//! Plausible words picked by a keyed hash of the real value: person
//! names, street addresses and filler text. Deterministic, not unique.

use super::keyed::{Prf, Tag};
use super::transform::NamePart;

/// Given names (ASCII, several languages).
pub(crate) const GIVEN: &[&str] = &[
    "Aada", "Adam", "Aiko", "Alba", "Alex", "Alice", "Amara", "Amir", "Ana", "Andrea", "Anna",
    "Arjun", "Astrid", "Ben", "Bianca", "Bruno", "Carla", "Carlos", "Chen", "Chloe", "Clara",
    "Daniel", "David", "Diego", "Elena", "Elif", "Ella", "Emil", "Emma", "Eric", "Eva", "Fatima",
    "Felix", "Finn", "Freya", "Gabriel", "Grace", "Hana", "Hannah", "Hugo", "Ines", "Ingrid",
    "Isaac", "Ivan", "Jack", "Jana", "Javier", "Jonas", "Julia", "Kai", "Kenji", "Laila", "Lara",
    "Leo", "Lena", "Liam", "Lina", "Lucas", "Lucia", "Luis", "Maja", "Marco", "Maria", "Marta",
    "Mateo", "Maya", "Mei", "Mila", "Mira", "Nadia", "Nia", "Nico", "Nina", "Noah", "Nora", "Olga",
    "Omar", "Oscar", "Paula", "Pedro", "Priya", "Rafael", "Ravi", "Rosa", "Ruth", "Sam", "Sara",
    "Sofia", "Tariq", "Tess", "Theo", "Tomas", "Uma", "Vera", "Victor", "Yara", "Yusuf", "Zara",
    "Zoe",
];

/// Family names (ASCII, several languages).
pub(crate) const FAMILY: &[&str] = &[
    "Abbott", "Acosta", "Adler", "Ahmed", "Alvarez", "Andersen", "Bauer", "Becker", "Berg",
    "Bianchi", "Brennan", "Brooks", "Castro", "Chen", "Costa", "Cruz", "Dahl", "Diaz", "Dubois",
    "Ekstrom", "Ellis", "Falk", "Fischer", "Flores", "Garcia", "Gomez", "Green", "Haas", "Hansen",
    "Hayes", "Horvat", "Ibrahim", "Ito", "Jansen", "Jensen", "Kaur", "Keller", "Khan", "Kim",
    "Klein", "Koch", "Kowalski", "Lange", "Larsen", "Laurent", "Lee", "Lopez", "Lund", "Martin",
    "Meyer", "Moreau", "Morris", "Murphy", "Nagy", "Novak", "Nowak", "Okafor", "Olsen", "Ortiz",
    "Park", "Patel", "Perez", "Petrov", "Popescu", "Quinn", "Ramos", "Reyes", "Richter", "Rossi",
    "Russo", "Sato", "Schmidt", "Schulz", "Silva", "Singh", "Smith", "Sousa", "Tanaka", "Torres",
    "Varga", "Vogel", "Wagner", "Walsh", "Weber", "Wong", "Wright", "Yamamoto", "Young", "Zhang",
    "Zimmer",
];

const STREETS: &[&str] = &[
    "Acacia", "Ash", "Aspen", "Bay", "Birch", "Bridge", "Brook", "Castle", "Cedar", "Chapel",
    "Cherry", "Church", "Cliff", "Dale", "Elm", "Fern", "Forest", "Garden", "Glen", "Harbor",
    "Hazel", "Heath", "Hill", "Holly", "Lake", "Linden", "Maple", "Meadow", "Mill", "Oak",
    "Orchard", "Park", "Pine", "Quarry", "River", "Rose", "Spring", "Station", "Willow",
    "Windmill",
];

const SUFFIXES: &[&str] = &[
    "Street", "Road", "Avenue", "Lane", "Way", "Close", "Drive", "Court",
];

const CITIES: &[&str] = &[
    "Springfield",
    "Riverton",
    "Fairview",
    "Lakeside",
    "Millbrook",
    "Greenville",
    "Kingsport",
    "Oakdale",
    "Westfield",
    "Ashford",
    "Brookhaven",
    "Clearwater",
    "Eastwood",
    "Hillcrest",
    "Maplewood",
    "Northbridge",
];

const FILLER: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "enim",
    "ad",
    "minim",
    "veniam",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
    "laboris",
    "nisi",
    "aliquip",
    "ex",
    "ea",
    "commodo",
    "consequat",
    "duis",
    "aute",
    "irure",
    "in",
    "reprehenderit",
    "voluptate",
    "velit",
    "esse",
    "cillum",
    "fugiat",
    "nulla",
    "pariatur",
    "excepteur",
    "sint",
    "occaecat",
    "cupidatat",
    "non",
    "proident",
    "sunt",
    "culpa",
    "qui",
    "officia",
    "deserunt",
    "mollit",
    "anim",
    "id",
    "est",
    "laborum",
];

/// The longest filler written, in characters.
pub(crate) const MAX_FILLER: usize = 2000;

/// Picks `list[n mod len]` from two tag bytes.
fn pick<'a>(list: &[&'a str], tag: &Tag, at: usize) -> &'a str {
    let n = usize::from(u16::from_be_bytes([tag[at], tag[at + 1]]));
    list[n % list.len()]
}

/// The PRF domain of person name tags.
pub(crate) const NAME_DOMAIN: u8 = b'n';

/// Appends a person name for `value`, whose tag (domain [`NAME_DOMAIN`])
/// is `tag`.
pub(crate) fn person_name_tagged(tag: &Tag, value: &[u8], part: NamePart, out: &mut Vec<u8>) {
    let given = pick(GIVEN, tag, 0);
    let family = pick(FAMILY, tag, 2);
    match part {
        NamePart::Given => out.extend_from_slice(given.as_bytes()),
        NamePart::Family => out.extend_from_slice(family.as_bytes()),
        NamePart::Auto if !two_words(value) => out.extend_from_slice(given.as_bytes()),
        NamePart::Auto | NamePart::Full => {
            out.extend_from_slice(given.as_bytes());
            out.push(b' ');
            out.extend_from_slice(family.as_bytes());
        }
    }
}

/// Whether `value` has at least two words (runs of bytes other than ASCII
/// whitespace): a word, whitespace, a word, read no further than that.
fn two_words(value: &[u8]) -> bool {
    let mut space = value.iter().map(u8::is_ascii_whitespace);
    space.any(|s| !s) && space.any(|s| s) && space.any(|s| !s)
}

/// A lower-case given name, for email local parts.
pub(crate) fn given_name(tag: &Tag, at: usize) -> &'static str {
    pick(GIVEN, tag, at)
}

/// Appends a street address for `value`, with a city when the value has a
/// comma.
pub(crate) fn address(prf: &Prf, value: &[u8], out: &mut Vec<u8>) {
    let tag = prf.tag(b'a', value);
    let number = u16::from_be_bytes([tag[0], tag[1]]) % 999 + 1;
    out.extend_from_slice(number.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(pick(STREETS, &tag, 2).as_bytes());
    out.push(b' ');
    out.extend_from_slice(pick(SUFFIXES, &tag, 4).as_bytes());
    if value.contains(&b',') {
        out.extend_from_slice(b", ");
        out.extend_from_slice(pick(CITIES, &tag, 6).as_bytes());
    }
}

/// Appends filler words of about `chars` characters (at least one word,
/// at most [`MAX_FILLER`]), ending with a full stop when there is room.
pub(crate) fn filler(prf: &Prf, value: &[u8], chars: usize, out: &mut Vec<u8>) {
    let target = chars.clamp(1, MAX_FILLER);
    let start = out.len();
    let mut tag = prf.tag(b'f', value);
    let mut at = 0;
    loop {
        if at + 1 >= tag.len() {
            tag = prf.tag(b'f', &tag);
            at = 0;
        }
        let word = pick(FILLER, &tag, at);
        at += 2;
        let len = out.len() - start;
        let sep = usize::from(len > 0);
        if len > 0 && len + sep + word.len() >= target {
            break;
        }
        if len > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(word.as_bytes());
        if len == 0 {
            out[start] = out[start].to_ascii_uppercase();
        }
        if out.len() - start >= target {
            break;
        }
    }
    if out.len() - start < target {
        out.push(b'.');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prf() -> Prf {
        Prf::new(&[8; 32])
    }

    fn person_name(prf: &Prf, value: &[u8], part: NamePart, out: &mut Vec<u8>) {
        person_name_tagged(&prf.tag(NAME_DOMAIN, value), value, part, out);
    }

    #[test]
    fn two_words_counts_as_splitting_does() {
        let cases: [&[u8]; 12] = [
            b"",
            b" ",
            b"Ada",
            b" Ada ",
            b"Ada Lovelace",
            b"  Ada\tLovelace  ",
            b"Ada\n",
            b"\x0cA B",
            b"A-B",
            "Zoë Kaur".as_bytes(),
            b"a  ",
            b"  a  b",
        ];
        for v in cases {
            let words = v
                .split(|b| b.is_ascii_whitespace())
                .filter(|w| !w.is_empty())
                .count();
            assert_eq!(two_words(v), words >= 2, "{v:?}");
        }
    }

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn names() {
        let full = s(|o| person_name(&prf(), b"Ada Lovelace", NamePart::Auto, o));
        assert_eq!(full.split(' ').count(), 2);
        let one = s(|o| person_name(&prf(), b"Ada", NamePart::Auto, o));
        assert!(GIVEN.contains(&one.as_str()));
        let fam = s(|o| person_name(&prf(), b"Ada", NamePart::Family, o));
        assert!(FAMILY.contains(&fam.as_str()));
        assert_eq!(
            full,
            s(|o| person_name(&prf(), b"Ada Lovelace", NamePart::Auto, o))
        );
    }

    #[test]
    fn addresses_and_filler() {
        let a = s(|o| address(&prf(), b"1 Main St, Anytown", o));
        assert!(a.contains(", "), "{a}");
        for n in [1, 5, 40, 300, 10_000] {
            let f = s(|o| filler(&prf(), b"secret note", n, o));
            assert!(!f.is_empty());
            assert!(f.len() <= n.clamp(1, MAX_FILLER) + 15, "{n}: {f}");
            assert!(f.len() + 15 >= n.min(MAX_FILLER), "{n}: {f}");
        }
    }
}
