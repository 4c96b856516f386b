/*
 * runnel/proto.h — the one public header of proto/: everything the folder
 * offers to the layers above it (storage, the broker, librunnel,
 * runnelctl). A file outside proto/ may include this or any single header
 * it lists; proto's *.c files are private, and so is nothing else here.
 *
 *   runnel/error.h         the error table: rn_err_t, names, retriable
 *   runnel/batch.h         the record batch format (storage and wire)
 *   runnel/frame.h         length-prefixed protobuf frames
 *   runnel/produce_view.h  zero-copy view of a Produce request
 *   runnel/durability.h    durability modes and their names
 *   runnel/units.h         the size and duration syntax
 *   runnel/keys.h          hash keys (MD5 routing, decimal) and name rules
 */
#ifndef RUNNEL_PROTO_H
#define RUNNEL_PROTO_H

#include "runnel/error.h"
#include "runnel/batch.h"
#include "runnel/frame.h"
#include "runnel/produce_view.h"
#include "runnel/durability.h"
#include "runnel/units.h"
#include "runnel/keys.h"
#include "runnel/sigv4.h"

#endif
