-- A stand-in for migration 9, which a change made alongside this one brings: migrations must
-- run without gaps. It changes nothing; it is dropped when that change's 0009 arrives.
SELECT 1;
