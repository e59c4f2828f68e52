//! The built-in PostgreSQL types: generated from `pg_type` of PostgreSQL 15 (every type in
//! `pg_catalog` that is not a table row type), with tokio-postgres's constant names.

use super::{Kind, Oid, Type};

/// One built-in type: its OID, `typname`, kind and `typcategory`.
pub(super) struct Builtin {
    pub(super) oid: Oid,
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    pub(super) category: u8,
}

/// Every built-in type, indexed by the number in `Type`'s built-in variant.
pub(super) static BUILTINS: [Builtin; 185] = [
    Builtin {
        oid: 16,
        name: "bool",
        kind: Kind::Simple,
        category: b'B',
    },
    Builtin {
        oid: 17,
        name: "bytea",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 18,
        name: "char",
        kind: Kind::Simple,
        category: b'Z',
    },
    Builtin {
        oid: 19,
        name: "name",
        kind: Kind::Simple,
        category: b'S',
    },
    Builtin {
        oid: 20,
        name: "int8",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 21,
        name: "int2",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 22,
        name: "int2vector",
        kind: Kind::Array(Type::INT2),
        category: b'A',
    },
    Builtin {
        oid: 23,
        name: "int4",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 24,
        name: "regproc",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 25,
        name: "text",
        kind: Kind::Simple,
        category: b'S',
    },
    Builtin {
        oid: 26,
        name: "oid",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 27,
        name: "tid",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 28,
        name: "xid",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 29,
        name: "cid",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 30,
        name: "oidvector",
        kind: Kind::Array(Type::OID),
        category: b'A',
    },
    Builtin {
        oid: 32,
        name: "pg_ddl_command",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 114,
        name: "json",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 142,
        name: "xml",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 143,
        name: "_xml",
        kind: Kind::Array(Type::XML),
        category: b'A',
    },
    Builtin {
        oid: 194,
        name: "pg_node_tree",
        kind: Kind::Simple,
        category: b'Z',
    },
    Builtin {
        oid: 199,
        name: "_json",
        kind: Kind::Array(Type::JSON),
        category: b'A',
    },
    Builtin {
        oid: 269,
        name: "table_am_handler",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 271,
        name: "_xid8",
        kind: Kind::Array(Type::XID8),
        category: b'A',
    },
    Builtin {
        oid: 325,
        name: "index_am_handler",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 600,
        name: "point",
        kind: Kind::Simple,
        category: b'G',
    },
    Builtin {
        oid: 601,
        name: "lseg",
        kind: Kind::Simple,
        category: b'G',
    },
    Builtin {
        oid: 602,
        name: "path",
        kind: Kind::Simple,
        category: b'G',
    },
    Builtin {
        oid: 603,
        name: "box",
        kind: Kind::Simple,
        category: b'G',
    },
    Builtin {
        oid: 604,
        name: "polygon",
        kind: Kind::Simple,
        category: b'G',
    },
    Builtin {
        oid: 628,
        name: "line",
        kind: Kind::Simple,
        category: b'G',
    },
    Builtin {
        oid: 629,
        name: "_line",
        kind: Kind::Array(Type::LINE),
        category: b'A',
    },
    Builtin {
        oid: 650,
        name: "cidr",
        kind: Kind::Simple,
        category: b'I',
    },
    Builtin {
        oid: 651,
        name: "_cidr",
        kind: Kind::Array(Type::CIDR),
        category: b'A',
    },
    Builtin {
        oid: 700,
        name: "float4",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 701,
        name: "float8",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 705,
        name: "unknown",
        kind: Kind::Pseudo,
        category: b'X',
    },
    Builtin {
        oid: 718,
        name: "circle",
        kind: Kind::Simple,
        category: b'G',
    },
    Builtin {
        oid: 719,
        name: "_circle",
        kind: Kind::Array(Type::CIRCLE),
        category: b'A',
    },
    Builtin {
        oid: 774,
        name: "macaddr8",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 775,
        name: "_macaddr8",
        kind: Kind::Array(Type::MACADDR8),
        category: b'A',
    },
    Builtin {
        oid: 790,
        name: "money",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 791,
        name: "_money",
        kind: Kind::Array(Type::MONEY),
        category: b'A',
    },
    Builtin {
        oid: 829,
        name: "macaddr",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 869,
        name: "inet",
        kind: Kind::Simple,
        category: b'I',
    },
    Builtin {
        oid: 1000,
        name: "_bool",
        kind: Kind::Array(Type::BOOL),
        category: b'A',
    },
    Builtin {
        oid: 1001,
        name: "_bytea",
        kind: Kind::Array(Type::BYTEA),
        category: b'A',
    },
    Builtin {
        oid: 1002,
        name: "_char",
        kind: Kind::Array(Type::CHAR),
        category: b'A',
    },
    Builtin {
        oid: 1003,
        name: "_name",
        kind: Kind::Array(Type::NAME),
        category: b'A',
    },
    Builtin {
        oid: 1005,
        name: "_int2",
        kind: Kind::Array(Type::INT2),
        category: b'A',
    },
    Builtin {
        oid: 1006,
        name: "_int2vector",
        kind: Kind::Array(Type::INT2_VECTOR),
        category: b'A',
    },
    Builtin {
        oid: 1007,
        name: "_int4",
        kind: Kind::Array(Type::INT4),
        category: b'A',
    },
    Builtin {
        oid: 1008,
        name: "_regproc",
        kind: Kind::Array(Type::REGPROC),
        category: b'A',
    },
    Builtin {
        oid: 1009,
        name: "_text",
        kind: Kind::Array(Type::TEXT),
        category: b'A',
    },
    Builtin {
        oid: 1010,
        name: "_tid",
        kind: Kind::Array(Type::TID),
        category: b'A',
    },
    Builtin {
        oid: 1011,
        name: "_xid",
        kind: Kind::Array(Type::XID),
        category: b'A',
    },
    Builtin {
        oid: 1012,
        name: "_cid",
        kind: Kind::Array(Type::CID),
        category: b'A',
    },
    Builtin {
        oid: 1013,
        name: "_oidvector",
        kind: Kind::Array(Type::OID_VECTOR),
        category: b'A',
    },
    Builtin {
        oid: 1014,
        name: "_bpchar",
        kind: Kind::Array(Type::BPCHAR),
        category: b'A',
    },
    Builtin {
        oid: 1015,
        name: "_varchar",
        kind: Kind::Array(Type::VARCHAR),
        category: b'A',
    },
    Builtin {
        oid: 1016,
        name: "_int8",
        kind: Kind::Array(Type::INT8),
        category: b'A',
    },
    Builtin {
        oid: 1017,
        name: "_point",
        kind: Kind::Array(Type::POINT),
        category: b'A',
    },
    Builtin {
        oid: 1018,
        name: "_lseg",
        kind: Kind::Array(Type::LSEG),
        category: b'A',
    },
    Builtin {
        oid: 1019,
        name: "_path",
        kind: Kind::Array(Type::PATH),
        category: b'A',
    },
    Builtin {
        oid: 1020,
        name: "_box",
        kind: Kind::Array(Type::BOX),
        category: b'A',
    },
    Builtin {
        oid: 1021,
        name: "_float4",
        kind: Kind::Array(Type::FLOAT4),
        category: b'A',
    },
    Builtin {
        oid: 1022,
        name: "_float8",
        kind: Kind::Array(Type::FLOAT8),
        category: b'A',
    },
    Builtin {
        oid: 1027,
        name: "_polygon",
        kind: Kind::Array(Type::POLYGON),
        category: b'A',
    },
    Builtin {
        oid: 1028,
        name: "_oid",
        kind: Kind::Array(Type::OID),
        category: b'A',
    },
    Builtin {
        oid: 1033,
        name: "aclitem",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 1034,
        name: "_aclitem",
        kind: Kind::Array(Type::ACLITEM),
        category: b'A',
    },
    Builtin {
        oid: 1040,
        name: "_macaddr",
        kind: Kind::Array(Type::MACADDR),
        category: b'A',
    },
    Builtin {
        oid: 1041,
        name: "_inet",
        kind: Kind::Array(Type::INET),
        category: b'A',
    },
    Builtin {
        oid: 1042,
        name: "bpchar",
        kind: Kind::Simple,
        category: b'S',
    },
    Builtin {
        oid: 1043,
        name: "varchar",
        kind: Kind::Simple,
        category: b'S',
    },
    Builtin {
        oid: 1082,
        name: "date",
        kind: Kind::Simple,
        category: b'D',
    },
    Builtin {
        oid: 1083,
        name: "time",
        kind: Kind::Simple,
        category: b'D',
    },
    Builtin {
        oid: 1114,
        name: "timestamp",
        kind: Kind::Simple,
        category: b'D',
    },
    Builtin {
        oid: 1115,
        name: "_timestamp",
        kind: Kind::Array(Type::TIMESTAMP),
        category: b'A',
    },
    Builtin {
        oid: 1182,
        name: "_date",
        kind: Kind::Array(Type::DATE),
        category: b'A',
    },
    Builtin {
        oid: 1183,
        name: "_time",
        kind: Kind::Array(Type::TIME),
        category: b'A',
    },
    Builtin {
        oid: 1184,
        name: "timestamptz",
        kind: Kind::Simple,
        category: b'D',
    },
    Builtin {
        oid: 1185,
        name: "_timestamptz",
        kind: Kind::Array(Type::TIMESTAMPTZ),
        category: b'A',
    },
    Builtin {
        oid: 1186,
        name: "interval",
        kind: Kind::Simple,
        category: b'T',
    },
    Builtin {
        oid: 1187,
        name: "_interval",
        kind: Kind::Array(Type::INTERVAL),
        category: b'A',
    },
    Builtin {
        oid: 1231,
        name: "_numeric",
        kind: Kind::Array(Type::NUMERIC),
        category: b'A',
    },
    Builtin {
        oid: 1263,
        name: "_cstring",
        kind: Kind::Array(Type::CSTRING),
        category: b'A',
    },
    Builtin {
        oid: 1266,
        name: "timetz",
        kind: Kind::Simple,
        category: b'D',
    },
    Builtin {
        oid: 1270,
        name: "_timetz",
        kind: Kind::Array(Type::TIMETZ),
        category: b'A',
    },
    Builtin {
        oid: 1560,
        name: "bit",
        kind: Kind::Simple,
        category: b'V',
    },
    Builtin {
        oid: 1561,
        name: "_bit",
        kind: Kind::Array(Type::BIT),
        category: b'A',
    },
    Builtin {
        oid: 1562,
        name: "varbit",
        kind: Kind::Simple,
        category: b'V',
    },
    Builtin {
        oid: 1563,
        name: "_varbit",
        kind: Kind::Array(Type::VARBIT),
        category: b'A',
    },
    Builtin {
        oid: 1700,
        name: "numeric",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 1790,
        name: "refcursor",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 2201,
        name: "_refcursor",
        kind: Kind::Array(Type::REFCURSOR),
        category: b'A',
    },
    Builtin {
        oid: 2202,
        name: "regprocedure",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 2203,
        name: "regoper",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 2204,
        name: "regoperator",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 2205,
        name: "regclass",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 2206,
        name: "regtype",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 2207,
        name: "_regprocedure",
        kind: Kind::Array(Type::REGPROCEDURE),
        category: b'A',
    },
    Builtin {
        oid: 2208,
        name: "_regoper",
        kind: Kind::Array(Type::REGOPER),
        category: b'A',
    },
    Builtin {
        oid: 2209,
        name: "_regoperator",
        kind: Kind::Array(Type::REGOPERATOR),
        category: b'A',
    },
    Builtin {
        oid: 2210,
        name: "_regclass",
        kind: Kind::Array(Type::REGCLASS),
        category: b'A',
    },
    Builtin {
        oid: 2211,
        name: "_regtype",
        kind: Kind::Array(Type::REGTYPE),
        category: b'A',
    },
    Builtin {
        oid: 2249,
        name: "record",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 2275,
        name: "cstring",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 2276,
        name: "any",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 2277,
        name: "anyarray",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 2278,
        name: "void",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 2279,
        name: "trigger",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 2280,
        name: "language_handler",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 2281,
        name: "internal",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 2283,
        name: "anyelement",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 2287,
        name: "_record",
        kind: Kind::Array(Type::RECORD),
        category: b'P',
    },
    Builtin {
        oid: 2776,
        name: "anynonarray",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 2949,
        name: "_txid_snapshot",
        kind: Kind::Array(Type::TXID_SNAPSHOT),
        category: b'A',
    },
    Builtin {
        oid: 2950,
        name: "uuid",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 2951,
        name: "_uuid",
        kind: Kind::Array(Type::UUID),
        category: b'A',
    },
    Builtin {
        oid: 2970,
        name: "txid_snapshot",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 3115,
        name: "fdw_handler",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 3220,
        name: "pg_lsn",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 3221,
        name: "_pg_lsn",
        kind: Kind::Array(Type::PG_LSN),
        category: b'A',
    },
    Builtin {
        oid: 3310,
        name: "tsm_handler",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 3361,
        name: "pg_ndistinct",
        kind: Kind::Simple,
        category: b'Z',
    },
    Builtin {
        oid: 3402,
        name: "pg_dependencies",
        kind: Kind::Simple,
        category: b'Z',
    },
    Builtin {
        oid: 3500,
        name: "anyenum",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 3614,
        name: "tsvector",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 3615,
        name: "tsquery",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 3642,
        name: "gtsvector",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 3643,
        name: "_tsvector",
        kind: Kind::Array(Type::TS_VECTOR),
        category: b'A',
    },
    Builtin {
        oid: 3644,
        name: "_gtsvector",
        kind: Kind::Array(Type::GTS_VECTOR),
        category: b'A',
    },
    Builtin {
        oid: 3645,
        name: "_tsquery",
        kind: Kind::Array(Type::TSQUERY),
        category: b'A',
    },
    Builtin {
        oid: 3734,
        name: "regconfig",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 3735,
        name: "_regconfig",
        kind: Kind::Array(Type::REGCONFIG),
        category: b'A',
    },
    Builtin {
        oid: 3769,
        name: "regdictionary",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 3770,
        name: "_regdictionary",
        kind: Kind::Array(Type::REGDICTIONARY),
        category: b'A',
    },
    Builtin {
        oid: 3802,
        name: "jsonb",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 3807,
        name: "_jsonb",
        kind: Kind::Array(Type::JSONB),
        category: b'A',
    },
    Builtin {
        oid: 3831,
        name: "anyrange",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 3838,
        name: "event_trigger",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 3904,
        name: "int4range",
        kind: Kind::Range(Type::INT4),
        category: b'R',
    },
    Builtin {
        oid: 3905,
        name: "_int4range",
        kind: Kind::Array(Type::INT4_RANGE),
        category: b'A',
    },
    Builtin {
        oid: 3906,
        name: "numrange",
        kind: Kind::Range(Type::NUMERIC),
        category: b'R',
    },
    Builtin {
        oid: 3907,
        name: "_numrange",
        kind: Kind::Array(Type::NUM_RANGE),
        category: b'A',
    },
    Builtin {
        oid: 3908,
        name: "tsrange",
        kind: Kind::Range(Type::TIMESTAMP),
        category: b'R',
    },
    Builtin {
        oid: 3909,
        name: "_tsrange",
        kind: Kind::Array(Type::TS_RANGE),
        category: b'A',
    },
    Builtin {
        oid: 3910,
        name: "tstzrange",
        kind: Kind::Range(Type::TIMESTAMPTZ),
        category: b'R',
    },
    Builtin {
        oid: 3911,
        name: "_tstzrange",
        kind: Kind::Array(Type::TSTZ_RANGE),
        category: b'A',
    },
    Builtin {
        oid: 3912,
        name: "daterange",
        kind: Kind::Range(Type::DATE),
        category: b'R',
    },
    Builtin {
        oid: 3913,
        name: "_daterange",
        kind: Kind::Array(Type::DATE_RANGE),
        category: b'A',
    },
    Builtin {
        oid: 3926,
        name: "int8range",
        kind: Kind::Range(Type::INT8),
        category: b'R',
    },
    Builtin {
        oid: 3927,
        name: "_int8range",
        kind: Kind::Array(Type::INT8_RANGE),
        category: b'A',
    },
    Builtin {
        oid: 4072,
        name: "jsonpath",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 4073,
        name: "_jsonpath",
        kind: Kind::Array(Type::JSONPATH),
        category: b'A',
    },
    Builtin {
        oid: 4089,
        name: "regnamespace",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 4090,
        name: "_regnamespace",
        kind: Kind::Array(Type::REGNAMESPACE),
        category: b'A',
    },
    Builtin {
        oid: 4096,
        name: "regrole",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 4097,
        name: "_regrole",
        kind: Kind::Array(Type::REGROLE),
        category: b'A',
    },
    Builtin {
        oid: 4191,
        name: "regcollation",
        kind: Kind::Simple,
        category: b'N',
    },
    Builtin {
        oid: 4192,
        name: "_regcollation",
        kind: Kind::Array(Type::REGCOLLATION),
        category: b'A',
    },
    Builtin {
        oid: 4451,
        name: "int4multirange",
        kind: Kind::Multirange(Type::INT4_RANGE),
        category: b'R',
    },
    Builtin {
        oid: 4532,
        name: "nummultirange",
        kind: Kind::Multirange(Type::NUM_RANGE),
        category: b'R',
    },
    Builtin {
        oid: 4533,
        name: "tsmultirange",
        kind: Kind::Multirange(Type::TS_RANGE),
        category: b'R',
    },
    Builtin {
        oid: 4534,
        name: "tstzmultirange",
        kind: Kind::Multirange(Type::TSTZ_RANGE),
        category: b'R',
    },
    Builtin {
        oid: 4535,
        name: "datemultirange",
        kind: Kind::Multirange(Type::DATE_RANGE),
        category: b'R',
    },
    Builtin {
        oid: 4536,
        name: "int8multirange",
        kind: Kind::Multirange(Type::INT8_RANGE),
        category: b'R',
    },
    Builtin {
        oid: 4537,
        name: "anymultirange",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 4538,
        name: "anycompatiblemultirange",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 4600,
        name: "pg_brin_bloom_summary",
        kind: Kind::Simple,
        category: b'Z',
    },
    Builtin {
        oid: 4601,
        name: "pg_brin_minmax_multi_summary",
        kind: Kind::Simple,
        category: b'Z',
    },
    Builtin {
        oid: 5017,
        name: "pg_mcv_list",
        kind: Kind::Simple,
        category: b'Z',
    },
    Builtin {
        oid: 5038,
        name: "pg_snapshot",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 5039,
        name: "_pg_snapshot",
        kind: Kind::Array(Type::PG_SNAPSHOT),
        category: b'A',
    },
    Builtin {
        oid: 5069,
        name: "xid8",
        kind: Kind::Simple,
        category: b'U',
    },
    Builtin {
        oid: 5077,
        name: "anycompatible",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 5078,
        name: "anycompatiblearray",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 5079,
        name: "anycompatiblenonarray",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 5080,
        name: "anycompatiblerange",
        kind: Kind::Pseudo,
        category: b'P',
    },
    Builtin {
        oid: 6150,
        name: "_int4multirange",
        kind: Kind::Array(Type::INT4MULTI_RANGE),
        category: b'A',
    },
    Builtin {
        oid: 6151,
        name: "_nummultirange",
        kind: Kind::Array(Type::NUMMULTI_RANGE),
        category: b'A',
    },
    Builtin {
        oid: 6152,
        name: "_tsmultirange",
        kind: Kind::Array(Type::TSMULTI_RANGE),
        category: b'A',
    },
    Builtin {
        oid: 6153,
        name: "_tstzmultirange",
        kind: Kind::Array(Type::TSTZMULTI_RANGE),
        category: b'A',
    },
    Builtin {
        oid: 6155,
        name: "_datemultirange",
        kind: Kind::Array(Type::DATEMULTI_RANGE),
        category: b'A',
    },
    Builtin {
        oid: 6157,
        name: "_int8multirange",
        kind: Kind::Array(Type::INT8MULTI_RANGE),
        category: b'A',
    },
];

impl Type {
    /// The built-in `bool` type (OID 16).
    pub const BOOL: Type = Type::builtin(0);
    /// The built-in `bytea` type (OID 17).
    pub const BYTEA: Type = Type::builtin(1);
    /// The built-in `char` type (OID 18).
    pub const CHAR: Type = Type::builtin(2);
    /// The built-in `name` type (OID 19).
    pub const NAME: Type = Type::builtin(3);
    /// The built-in `int8` type (OID 20).
    pub const INT8: Type = Type::builtin(4);
    /// The built-in `int2` type (OID 21).
    pub const INT2: Type = Type::builtin(5);
    /// The built-in `int2vector` type (OID 22).
    pub const INT2_VECTOR: Type = Type::builtin(6);
    /// The built-in `int4` type (OID 23).
    pub const INT4: Type = Type::builtin(7);
    /// The built-in `regproc` type (OID 24).
    pub const REGPROC: Type = Type::builtin(8);
    /// The built-in `text` type (OID 25).
    pub const TEXT: Type = Type::builtin(9);
    /// The built-in `oid` type (OID 26).
    pub const OID: Type = Type::builtin(10);
    /// The built-in `tid` type (OID 27).
    pub const TID: Type = Type::builtin(11);
    /// The built-in `xid` type (OID 28).
    pub const XID: Type = Type::builtin(12);
    /// The built-in `cid` type (OID 29).
    pub const CID: Type = Type::builtin(13);
    /// The built-in `oidvector` type (OID 30).
    pub const OID_VECTOR: Type = Type::builtin(14);
    /// The built-in `pg_ddl_command` type (OID 32).
    pub const PG_DDL_COMMAND: Type = Type::builtin(15);
    /// The built-in `json` type (OID 114).
    pub const JSON: Type = Type::builtin(16);
    /// The built-in `xml` type (OID 142).
    pub const XML: Type = Type::builtin(17);
    /// The built-in `xml[]` type (OID 143).
    pub const XML_ARRAY: Type = Type::builtin(18);
    /// The built-in `pg_node_tree` type (OID 194).
    pub const PG_NODE_TREE: Type = Type::builtin(19);
    /// The built-in `json[]` type (OID 199).
    pub const JSON_ARRAY: Type = Type::builtin(20);
    /// The built-in `table_am_handler` type (OID 269).
    pub const TABLE_AM_HANDLER: Type = Type::builtin(21);
    /// The built-in `xid8[]` type (OID 271).
    pub const XID8_ARRAY: Type = Type::builtin(22);
    /// The built-in `index_am_handler` type (OID 325).
    pub const INDEX_AM_HANDLER: Type = Type::builtin(23);
    /// The built-in `point` type (OID 600).
    pub const POINT: Type = Type::builtin(24);
    /// The built-in `lseg` type (OID 601).
    pub const LSEG: Type = Type::builtin(25);
    /// The built-in `path` type (OID 602).
    pub const PATH: Type = Type::builtin(26);
    /// The built-in `box` type (OID 603).
    pub const BOX: Type = Type::builtin(27);
    /// The built-in `polygon` type (OID 604).
    pub const POLYGON: Type = Type::builtin(28);
    /// The built-in `line` type (OID 628).
    pub const LINE: Type = Type::builtin(29);
    /// The built-in `line[]` type (OID 629).
    pub const LINE_ARRAY: Type = Type::builtin(30);
    /// The built-in `cidr` type (OID 650).
    pub const CIDR: Type = Type::builtin(31);
    /// The built-in `cidr[]` type (OID 651).
    pub const CIDR_ARRAY: Type = Type::builtin(32);
    /// The built-in `float4` type (OID 700).
    pub const FLOAT4: Type = Type::builtin(33);
    /// The built-in `float8` type (OID 701).
    pub const FLOAT8: Type = Type::builtin(34);
    /// The built-in `unknown` type (OID 705).
    pub const UNKNOWN: Type = Type::builtin(35);
    /// The built-in `circle` type (OID 718).
    pub const CIRCLE: Type = Type::builtin(36);
    /// The built-in `circle[]` type (OID 719).
    pub const CIRCLE_ARRAY: Type = Type::builtin(37);
    /// The built-in `macaddr8` type (OID 774).
    pub const MACADDR8: Type = Type::builtin(38);
    /// The built-in `macaddr8[]` type (OID 775).
    pub const MACADDR8_ARRAY: Type = Type::builtin(39);
    /// The built-in `money` type (OID 790).
    pub const MONEY: Type = Type::builtin(40);
    /// The built-in `money[]` type (OID 791).
    pub const MONEY_ARRAY: Type = Type::builtin(41);
    /// The built-in `macaddr` type (OID 829).
    pub const MACADDR: Type = Type::builtin(42);
    /// The built-in `inet` type (OID 869).
    pub const INET: Type = Type::builtin(43);
    /// The built-in `bool[]` type (OID 1000).
    pub const BOOL_ARRAY: Type = Type::builtin(44);
    /// The built-in `bytea[]` type (OID 1001).
    pub const BYTEA_ARRAY: Type = Type::builtin(45);
    /// The built-in `char[]` type (OID 1002).
    pub const CHAR_ARRAY: Type = Type::builtin(46);
    /// The built-in `name[]` type (OID 1003).
    pub const NAME_ARRAY: Type = Type::builtin(47);
    /// The built-in `int2[]` type (OID 1005).
    pub const INT2_ARRAY: Type = Type::builtin(48);
    /// The built-in `int2vector[]` type (OID 1006).
    pub const INT2_VECTOR_ARRAY: Type = Type::builtin(49);
    /// The built-in `int4[]` type (OID 1007).
    pub const INT4_ARRAY: Type = Type::builtin(50);
    /// The built-in `regproc[]` type (OID 1008).
    pub const REGPROC_ARRAY: Type = Type::builtin(51);
    /// The built-in `text[]` type (OID 1009).
    pub const TEXT_ARRAY: Type = Type::builtin(52);
    /// The built-in `tid[]` type (OID 1010).
    pub const TID_ARRAY: Type = Type::builtin(53);
    /// The built-in `xid[]` type (OID 1011).
    pub const XID_ARRAY: Type = Type::builtin(54);
    /// The built-in `cid[]` type (OID 1012).
    pub const CID_ARRAY: Type = Type::builtin(55);
    /// The built-in `oidvector[]` type (OID 1013).
    pub const OID_VECTOR_ARRAY: Type = Type::builtin(56);
    /// The built-in `bpchar[]` type (OID 1014).
    pub const BPCHAR_ARRAY: Type = Type::builtin(57);
    /// The built-in `varchar[]` type (OID 1015).
    pub const VARCHAR_ARRAY: Type = Type::builtin(58);
    /// The built-in `int8[]` type (OID 1016).
    pub const INT8_ARRAY: Type = Type::builtin(59);
    /// The built-in `point[]` type (OID 1017).
    pub const POINT_ARRAY: Type = Type::builtin(60);
    /// The built-in `lseg[]` type (OID 1018).
    pub const LSEG_ARRAY: Type = Type::builtin(61);
    /// The built-in `path[]` type (OID 1019).
    pub const PATH_ARRAY: Type = Type::builtin(62);
    /// The built-in `box[]` type (OID 1020).
    pub const BOX_ARRAY: Type = Type::builtin(63);
    /// The built-in `float4[]` type (OID 1021).
    pub const FLOAT4_ARRAY: Type = Type::builtin(64);
    /// The built-in `float8[]` type (OID 1022).
    pub const FLOAT8_ARRAY: Type = Type::builtin(65);
    /// The built-in `polygon[]` type (OID 1027).
    pub const POLYGON_ARRAY: Type = Type::builtin(66);
    /// The built-in `oid[]` type (OID 1028).
    pub const OID_ARRAY: Type = Type::builtin(67);
    /// The built-in `aclitem` type (OID 1033).
    pub const ACLITEM: Type = Type::builtin(68);
    /// The built-in `aclitem[]` type (OID 1034).
    pub const ACLITEM_ARRAY: Type = Type::builtin(69);
    /// The built-in `macaddr[]` type (OID 1040).
    pub const MACADDR_ARRAY: Type = Type::builtin(70);
    /// The built-in `inet[]` type (OID 1041).
    pub const INET_ARRAY: Type = Type::builtin(71);
    /// The built-in `bpchar` type (OID 1042).
    pub const BPCHAR: Type = Type::builtin(72);
    /// The built-in `varchar` type (OID 1043).
    pub const VARCHAR: Type = Type::builtin(73);
    /// The built-in `date` type (OID 1082).
    pub const DATE: Type = Type::builtin(74);
    /// The built-in `time` type (OID 1083).
    pub const TIME: Type = Type::builtin(75);
    /// The built-in `timestamp` type (OID 1114).
    pub const TIMESTAMP: Type = Type::builtin(76);
    /// The built-in `timestamp[]` type (OID 1115).
    pub const TIMESTAMP_ARRAY: Type = Type::builtin(77);
    /// The built-in `date[]` type (OID 1182).
    pub const DATE_ARRAY: Type = Type::builtin(78);
    /// The built-in `time[]` type (OID 1183).
    pub const TIME_ARRAY: Type = Type::builtin(79);
    /// The built-in `timestamptz` type (OID 1184).
    pub const TIMESTAMPTZ: Type = Type::builtin(80);
    /// The built-in `timestamptz[]` type (OID 1185).
    pub const TIMESTAMPTZ_ARRAY: Type = Type::builtin(81);
    /// The built-in `interval` type (OID 1186).
    pub const INTERVAL: Type = Type::builtin(82);
    /// The built-in `interval[]` type (OID 1187).
    pub const INTERVAL_ARRAY: Type = Type::builtin(83);
    /// The built-in `numeric[]` type (OID 1231).
    pub const NUMERIC_ARRAY: Type = Type::builtin(84);
    /// The built-in `cstring[]` type (OID 1263).
    pub const CSTRING_ARRAY: Type = Type::builtin(85);
    /// The built-in `timetz` type (OID 1266).
    pub const TIMETZ: Type = Type::builtin(86);
    /// The built-in `timetz[]` type (OID 1270).
    pub const TIMETZ_ARRAY: Type = Type::builtin(87);
    /// The built-in `bit` type (OID 1560).
    pub const BIT: Type = Type::builtin(88);
    /// The built-in `bit[]` type (OID 1561).
    pub const BIT_ARRAY: Type = Type::builtin(89);
    /// The built-in `varbit` type (OID 1562).
    pub const VARBIT: Type = Type::builtin(90);
    /// The built-in `varbit[]` type (OID 1563).
    pub const VARBIT_ARRAY: Type = Type::builtin(91);
    /// The built-in `numeric` type (OID 1700).
    pub const NUMERIC: Type = Type::builtin(92);
    /// The built-in `refcursor` type (OID 1790).
    pub const REFCURSOR: Type = Type::builtin(93);
    /// The built-in `refcursor[]` type (OID 2201).
    pub const REFCURSOR_ARRAY: Type = Type::builtin(94);
    /// The built-in `regprocedure` type (OID 2202).
    pub const REGPROCEDURE: Type = Type::builtin(95);
    /// The built-in `regoper` type (OID 2203).
    pub const REGOPER: Type = Type::builtin(96);
    /// The built-in `regoperator` type (OID 2204).
    pub const REGOPERATOR: Type = Type::builtin(97);
    /// The built-in `regclass` type (OID 2205).
    pub const REGCLASS: Type = Type::builtin(98);
    /// The built-in `regtype` type (OID 2206).
    pub const REGTYPE: Type = Type::builtin(99);
    /// The built-in `regprocedure[]` type (OID 2207).
    pub const REGPROCEDURE_ARRAY: Type = Type::builtin(100);
    /// The built-in `regoper[]` type (OID 2208).
    pub const REGOPER_ARRAY: Type = Type::builtin(101);
    /// The built-in `regoperator[]` type (OID 2209).
    pub const REGOPERATOR_ARRAY: Type = Type::builtin(102);
    /// The built-in `regclass[]` type (OID 2210).
    pub const REGCLASS_ARRAY: Type = Type::builtin(103);
    /// The built-in `regtype[]` type (OID 2211).
    pub const REGTYPE_ARRAY: Type = Type::builtin(104);
    /// The built-in `record` type (OID 2249).
    pub const RECORD: Type = Type::builtin(105);
    /// The built-in `cstring` type (OID 2275).
    pub const CSTRING: Type = Type::builtin(106);
    /// The built-in `any` type (OID 2276).
    pub const ANY: Type = Type::builtin(107);
    /// The built-in `anyarray` type (OID 2277).
    pub const ANYARRAY: Type = Type::builtin(108);
    /// The built-in `void` type (OID 2278).
    pub const VOID: Type = Type::builtin(109);
    /// The built-in `trigger` type (OID 2279).
    pub const TRIGGER: Type = Type::builtin(110);
    /// The built-in `language_handler` type (OID 2280).
    pub const LANGUAGE_HANDLER: Type = Type::builtin(111);
    /// The built-in `internal` type (OID 2281).
    pub const INTERNAL: Type = Type::builtin(112);
    /// The built-in `anyelement` type (OID 2283).
    pub const ANYELEMENT: Type = Type::builtin(113);
    /// The built-in `record[]` type (OID 2287).
    pub const RECORD_ARRAY: Type = Type::builtin(114);
    /// The built-in `anynonarray` type (OID 2776).
    pub const ANYNONARRAY: Type = Type::builtin(115);
    /// The built-in `txid_snapshot[]` type (OID 2949).
    pub const TXID_SNAPSHOT_ARRAY: Type = Type::builtin(116);
    /// The built-in `uuid` type (OID 2950).
    pub const UUID: Type = Type::builtin(117);
    /// The built-in `uuid[]` type (OID 2951).
    pub const UUID_ARRAY: Type = Type::builtin(118);
    /// The built-in `txid_snapshot` type (OID 2970).
    pub const TXID_SNAPSHOT: Type = Type::builtin(119);
    /// The built-in `fdw_handler` type (OID 3115).
    pub const FDW_HANDLER: Type = Type::builtin(120);
    /// The built-in `pg_lsn` type (OID 3220).
    pub const PG_LSN: Type = Type::builtin(121);
    /// The built-in `pg_lsn[]` type (OID 3221).
    pub const PG_LSN_ARRAY: Type = Type::builtin(122);
    /// The built-in `tsm_handler` type (OID 3310).
    pub const TSM_HANDLER: Type = Type::builtin(123);
    /// The built-in `pg_ndistinct` type (OID 3361).
    pub const PG_NDISTINCT: Type = Type::builtin(124);
    /// The built-in `pg_dependencies` type (OID 3402).
    pub const PG_DEPENDENCIES: Type = Type::builtin(125);
    /// The built-in `anyenum` type (OID 3500).
    pub const ANYENUM: Type = Type::builtin(126);
    /// The built-in `tsvector` type (OID 3614).
    pub const TS_VECTOR: Type = Type::builtin(127);
    /// The built-in `tsquery` type (OID 3615).
    pub const TSQUERY: Type = Type::builtin(128);
    /// The built-in `gtsvector` type (OID 3642).
    pub const GTS_VECTOR: Type = Type::builtin(129);
    /// The built-in `tsvector[]` type (OID 3643).
    pub const TS_VECTOR_ARRAY: Type = Type::builtin(130);
    /// The built-in `gtsvector[]` type (OID 3644).
    pub const GTS_VECTOR_ARRAY: Type = Type::builtin(131);
    /// The built-in `tsquery[]` type (OID 3645).
    pub const TSQUERY_ARRAY: Type = Type::builtin(132);
    /// The built-in `regconfig` type (OID 3734).
    pub const REGCONFIG: Type = Type::builtin(133);
    /// The built-in `regconfig[]` type (OID 3735).
    pub const REGCONFIG_ARRAY: Type = Type::builtin(134);
    /// The built-in `regdictionary` type (OID 3769).
    pub const REGDICTIONARY: Type = Type::builtin(135);
    /// The built-in `regdictionary[]` type (OID 3770).
    pub const REGDICTIONARY_ARRAY: Type = Type::builtin(136);
    /// The built-in `jsonb` type (OID 3802).
    pub const JSONB: Type = Type::builtin(137);
    /// The built-in `jsonb[]` type (OID 3807).
    pub const JSONB_ARRAY: Type = Type::builtin(138);
    /// The built-in `anyrange` type (OID 3831).
    pub const ANY_RANGE: Type = Type::builtin(139);
    /// The built-in `event_trigger` type (OID 3838).
    pub const EVENT_TRIGGER: Type = Type::builtin(140);
    /// The built-in `int4range` type (OID 3904).
    pub const INT4_RANGE: Type = Type::builtin(141);
    /// The built-in `int4range[]` type (OID 3905).
    pub const INT4_RANGE_ARRAY: Type = Type::builtin(142);
    /// The built-in `numrange` type (OID 3906).
    pub const NUM_RANGE: Type = Type::builtin(143);
    /// The built-in `numrange[]` type (OID 3907).
    pub const NUM_RANGE_ARRAY: Type = Type::builtin(144);
    /// The built-in `tsrange` type (OID 3908).
    pub const TS_RANGE: Type = Type::builtin(145);
    /// The built-in `tsrange[]` type (OID 3909).
    pub const TS_RANGE_ARRAY: Type = Type::builtin(146);
    /// The built-in `tstzrange` type (OID 3910).
    pub const TSTZ_RANGE: Type = Type::builtin(147);
    /// The built-in `tstzrange[]` type (OID 3911).
    pub const TSTZ_RANGE_ARRAY: Type = Type::builtin(148);
    /// The built-in `daterange` type (OID 3912).
    pub const DATE_RANGE: Type = Type::builtin(149);
    /// The built-in `daterange[]` type (OID 3913).
    pub const DATE_RANGE_ARRAY: Type = Type::builtin(150);
    /// The built-in `int8range` type (OID 3926).
    pub const INT8_RANGE: Type = Type::builtin(151);
    /// The built-in `int8range[]` type (OID 3927).
    pub const INT8_RANGE_ARRAY: Type = Type::builtin(152);
    /// The built-in `jsonpath` type (OID 4072).
    pub const JSONPATH: Type = Type::builtin(153);
    /// The built-in `jsonpath[]` type (OID 4073).
    pub const JSONPATH_ARRAY: Type = Type::builtin(154);
    /// The built-in `regnamespace` type (OID 4089).
    pub const REGNAMESPACE: Type = Type::builtin(155);
    /// The built-in `regnamespace[]` type (OID 4090).
    pub const REGNAMESPACE_ARRAY: Type = Type::builtin(156);
    /// The built-in `regrole` type (OID 4096).
    pub const REGROLE: Type = Type::builtin(157);
    /// The built-in `regrole[]` type (OID 4097).
    pub const REGROLE_ARRAY: Type = Type::builtin(158);
    /// The built-in `regcollation` type (OID 4191).
    pub const REGCOLLATION: Type = Type::builtin(159);
    /// The built-in `regcollation[]` type (OID 4192).
    pub const REGCOLLATION_ARRAY: Type = Type::builtin(160);
    /// The built-in `int4multirange` type (OID 4451).
    pub const INT4MULTI_RANGE: Type = Type::builtin(161);
    /// The built-in `nummultirange` type (OID 4532).
    pub const NUMMULTI_RANGE: Type = Type::builtin(162);
    /// The built-in `tsmultirange` type (OID 4533).
    pub const TSMULTI_RANGE: Type = Type::builtin(163);
    /// The built-in `tstzmultirange` type (OID 4534).
    pub const TSTZMULTI_RANGE: Type = Type::builtin(164);
    /// The built-in `datemultirange` type (OID 4535).
    pub const DATEMULTI_RANGE: Type = Type::builtin(165);
    /// The built-in `int8multirange` type (OID 4536).
    pub const INT8MULTI_RANGE: Type = Type::builtin(166);
    /// The built-in `anymultirange` type (OID 4537).
    pub const ANYMULTI_RANGE: Type = Type::builtin(167);
    /// The built-in `anycompatiblemultirange` type (OID 4538).
    pub const ANYCOMPATIBLEMULTI_RANGE: Type = Type::builtin(168);
    /// The built-in `pg_brin_bloom_summary` type (OID 4600).
    pub const PG_BRIN_BLOOM_SUMMARY: Type = Type::builtin(169);
    /// The built-in `pg_brin_minmax_multi_summary` type (OID 4601).
    pub const PG_BRIN_MINMAX_MULTI_SUMMARY: Type = Type::builtin(170);
    /// The built-in `pg_mcv_list` type (OID 5017).
    pub const PG_MCV_LIST: Type = Type::builtin(171);
    /// The built-in `pg_snapshot` type (OID 5038).
    pub const PG_SNAPSHOT: Type = Type::builtin(172);
    /// The built-in `pg_snapshot[]` type (OID 5039).
    pub const PG_SNAPSHOT_ARRAY: Type = Type::builtin(173);
    /// The built-in `xid8` type (OID 5069).
    pub const XID8: Type = Type::builtin(174);
    /// The built-in `anycompatible` type (OID 5077).
    pub const ANYCOMPATIBLE: Type = Type::builtin(175);
    /// The built-in `anycompatiblearray` type (OID 5078).
    pub const ANYCOMPATIBLEARRAY: Type = Type::builtin(176);
    /// The built-in `anycompatiblenonarray` type (OID 5079).
    pub const ANYCOMPATIBLENONARRAY: Type = Type::builtin(177);
    /// The built-in `anycompatiblerange` type (OID 5080).
    pub const ANYCOMPATIBLE_RANGE: Type = Type::builtin(178);
    /// The built-in `int4multirange[]` type (OID 6150).
    pub const INT4MULTI_RANGE_ARRAY: Type = Type::builtin(179);
    /// The built-in `nummultirange[]` type (OID 6151).
    pub const NUMMULTI_RANGE_ARRAY: Type = Type::builtin(180);
    /// The built-in `tsmultirange[]` type (OID 6152).
    pub const TSMULTI_RANGE_ARRAY: Type = Type::builtin(181);
    /// The built-in `tstzmultirange[]` type (OID 6153).
    pub const TSTZMULTI_RANGE_ARRAY: Type = Type::builtin(182);
    /// The built-in `datemultirange[]` type (OID 6155).
    pub const DATEMULTI_RANGE_ARRAY: Type = Type::builtin(183);
    /// The built-in `int8multirange[]` type (OID 6157).
    pub const INT8MULTI_RANGE_ARRAY: Type = Type::builtin(184);
}

/// The index in [`BUILTINS`] of a built-in type's OID.
pub(super) const fn builtin_index(oid: Oid) -> Option<u16> {
    match oid {
        16 => Some(0),
        17 => Some(1),
        18 => Some(2),
        19 => Some(3),
        20 => Some(4),
        21 => Some(5),
        22 => Some(6),
        23 => Some(7),
        24 => Some(8),
        25 => Some(9),
        26 => Some(10),
        27 => Some(11),
        28 => Some(12),
        29 => Some(13),
        30 => Some(14),
        32 => Some(15),
        114 => Some(16),
        142 => Some(17),
        143 => Some(18),
        194 => Some(19),
        199 => Some(20),
        269 => Some(21),
        271 => Some(22),
        325 => Some(23),
        600 => Some(24),
        601 => Some(25),
        602 => Some(26),
        603 => Some(27),
        604 => Some(28),
        628 => Some(29),
        629 => Some(30),
        650 => Some(31),
        651 => Some(32),
        700 => Some(33),
        701 => Some(34),
        705 => Some(35),
        718 => Some(36),
        719 => Some(37),
        774 => Some(38),
        775 => Some(39),
        790 => Some(40),
        791 => Some(41),
        829 => Some(42),
        869 => Some(43),
        1000 => Some(44),
        1001 => Some(45),
        1002 => Some(46),
        1003 => Some(47),
        1005 => Some(48),
        1006 => Some(49),
        1007 => Some(50),
        1008 => Some(51),
        1009 => Some(52),
        1010 => Some(53),
        1011 => Some(54),
        1012 => Some(55),
        1013 => Some(56),
        1014 => Some(57),
        1015 => Some(58),
        1016 => Some(59),
        1017 => Some(60),
        1018 => Some(61),
        1019 => Some(62),
        1020 => Some(63),
        1021 => Some(64),
        1022 => Some(65),
        1027 => Some(66),
        1028 => Some(67),
        1033 => Some(68),
        1034 => Some(69),
        1040 => Some(70),
        1041 => Some(71),
        1042 => Some(72),
        1043 => Some(73),
        1082 => Some(74),
        1083 => Some(75),
        1114 => Some(76),
        1115 => Some(77),
        1182 => Some(78),
        1183 => Some(79),
        1184 => Some(80),
        1185 => Some(81),
        1186 => Some(82),
        1187 => Some(83),
        1231 => Some(84),
        1263 => Some(85),
        1266 => Some(86),
        1270 => Some(87),
        1560 => Some(88),
        1561 => Some(89),
        1562 => Some(90),
        1563 => Some(91),
        1700 => Some(92),
        1790 => Some(93),
        2201 => Some(94),
        2202 => Some(95),
        2203 => Some(96),
        2204 => Some(97),
        2205 => Some(98),
        2206 => Some(99),
        2207 => Some(100),
        2208 => Some(101),
        2209 => Some(102),
        2210 => Some(103),
        2211 => Some(104),
        2249 => Some(105),
        2275 => Some(106),
        2276 => Some(107),
        2277 => Some(108),
        2278 => Some(109),
        2279 => Some(110),
        2280 => Some(111),
        2281 => Some(112),
        2283 => Some(113),
        2287 => Some(114),
        2776 => Some(115),
        2949 => Some(116),
        2950 => Some(117),
        2951 => Some(118),
        2970 => Some(119),
        3115 => Some(120),
        3220 => Some(121),
        3221 => Some(122),
        3310 => Some(123),
        3361 => Some(124),
        3402 => Some(125),
        3500 => Some(126),
        3614 => Some(127),
        3615 => Some(128),
        3642 => Some(129),
        3643 => Some(130),
        3644 => Some(131),
        3645 => Some(132),
        3734 => Some(133),
        3735 => Some(134),
        3769 => Some(135),
        3770 => Some(136),
        3802 => Some(137),
        3807 => Some(138),
        3831 => Some(139),
        3838 => Some(140),
        3904 => Some(141),
        3905 => Some(142),
        3906 => Some(143),
        3907 => Some(144),
        3908 => Some(145),
        3909 => Some(146),
        3910 => Some(147),
        3911 => Some(148),
        3912 => Some(149),
        3913 => Some(150),
        3926 => Some(151),
        3927 => Some(152),
        4072 => Some(153),
        4073 => Some(154),
        4089 => Some(155),
        4090 => Some(156),
        4096 => Some(157),
        4097 => Some(158),
        4191 => Some(159),
        4192 => Some(160),
        4451 => Some(161),
        4532 => Some(162),
        4533 => Some(163),
        4534 => Some(164),
        4535 => Some(165),
        4536 => Some(166),
        4537 => Some(167),
        4538 => Some(168),
        4600 => Some(169),
        4601 => Some(170),
        5017 => Some(171),
        5038 => Some(172),
        5039 => Some(173),
        5069 => Some(174),
        5077 => Some(175),
        5078 => Some(176),
        5079 => Some(177),
        5080 => Some(178),
        6150 => Some(179),
        6151 => Some(180),
        6152 => Some(181),
        6153 => Some(182),
        6155 => Some(183),
        6157 => Some(184),
        _ => None,
    }
}

/// The index in [`BUILTINS`] of the array type whose element has this OID.
pub(super) const fn array_index_of(elem: Oid) -> Option<u16> {
    match elem {
        142 => Some(18),
        114 => Some(20),
        5069 => Some(22),
        628 => Some(30),
        650 => Some(32),
        718 => Some(37),
        774 => Some(39),
        790 => Some(41),
        16 => Some(44),
        17 => Some(45),
        18 => Some(46),
        19 => Some(47),
        21 => Some(48),
        22 => Some(49),
        23 => Some(50),
        24 => Some(51),
        25 => Some(52),
        27 => Some(53),
        28 => Some(54),
        29 => Some(55),
        30 => Some(56),
        1042 => Some(57),
        1043 => Some(58),
        20 => Some(59),
        600 => Some(60),
        601 => Some(61),
        602 => Some(62),
        603 => Some(63),
        700 => Some(64),
        701 => Some(65),
        604 => Some(66),
        26 => Some(67),
        1033 => Some(69),
        829 => Some(70),
        869 => Some(71),
        1114 => Some(77),
        1082 => Some(78),
        1083 => Some(79),
        1184 => Some(81),
        1186 => Some(83),
        1700 => Some(84),
        2275 => Some(85),
        1266 => Some(87),
        1560 => Some(89),
        1562 => Some(91),
        1790 => Some(94),
        2202 => Some(100),
        2203 => Some(101),
        2204 => Some(102),
        2205 => Some(103),
        2206 => Some(104),
        2249 => Some(114),
        2970 => Some(116),
        2950 => Some(118),
        3220 => Some(122),
        3614 => Some(130),
        3642 => Some(131),
        3615 => Some(132),
        3734 => Some(134),
        3769 => Some(136),
        3802 => Some(138),
        3904 => Some(142),
        3906 => Some(144),
        3908 => Some(146),
        3910 => Some(148),
        3912 => Some(150),
        3926 => Some(152),
        4072 => Some(154),
        4089 => Some(156),
        4096 => Some(158),
        4191 => Some(160),
        5038 => Some(173),
        4451 => Some(179),
        4532 => Some(180),
        4533 => Some(181),
        4534 => Some(182),
        4535 => Some(183),
        4536 => Some(184),
        _ => None,
    }
}

/// The index in [`BUILTINS`] of the built-in range type over this subtype.
pub(super) const fn range_index_of(subtype: Oid) -> Option<u16> {
    match subtype {
        23 => Some(141),
        1700 => Some(143),
        1114 => Some(145),
        1184 => Some(147),
        1082 => Some(149),
        20 => Some(151),
        _ => None,
    }
}
