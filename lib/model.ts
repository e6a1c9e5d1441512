/** The product's vocabulary: roles, specializations and violation kinds, named once. */

/** Roles of a user. */
export const ROLES = ["ADMIN", "INSTRUCTOR", "STUDENT"] as const;
/** A user's role. */
export type Role = typeof ROLES[number];

/** Specializations a student earns XP in (their levels live in `specialization_levels`). */
export const SPECIALIZATION_IDS = ["PLAYER", "COACH", "INTERNSHIP"] as const;
/** A specialization id. */
export type SpecializationId = typeof SPECIALIZATION_IDS[number];

/** What the integrity scan finds, in report order. */
export const VIOLATION_KINDS = [
  "LEVEL_MISMATCH",
  "MISSING_LICENSE",
  "ORPHAN_LICENSE",
  "MAX_LEVEL_BELOW_CURRENT",
  "LEVEL_XP_MISMATCH",
  "LEDGER_MISMATCH",
] as const;
/** One violation kind. */
export type ViolationKind = typeof VIOLATION_KINDS[number];
