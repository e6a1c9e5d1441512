\set sid random(1, :students)
\set s random(1, 3)
\set xp random(1, 100)
SELECT * FROM apply_xp(:sid, (ARRAY['PLAYER', 'COACH', 'INTERNSHIP'])[:s], :xp, :actor, 'pgbench', NULL, NULL);
