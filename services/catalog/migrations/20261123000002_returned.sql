-- A sale undone before shipment: a committed reservation can be returned,
-- its units going back on hand (the order saga's customer cancellation).
ALTER TABLE reservations DROP CONSTRAINT reservations_status_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_status_check
    CHECK (status IN ('reserved', 'rejected', 'released', 'committed', 'expired', 'returned'));
