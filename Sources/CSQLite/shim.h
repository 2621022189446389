#ifndef VARLAB_CSQLITE_SHIM_H
#define VARLAB_CSQLITE_SHIM_H
/* SQLite: the lab's results store (one queryable file of every cell's inputs and metrics across studies). */
#include <sqlite3.h>
#endif
