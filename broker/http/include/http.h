/*
 * http.h — transitional name of the route interface the HTTP applications
 * implement; it lives in rn_http.h (broker/http's one public header).
 */
#include "rn_http.h"
