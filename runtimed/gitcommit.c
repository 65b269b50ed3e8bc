#include "gitcommit.h"

#include "banned.h"
