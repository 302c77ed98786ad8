"use strict";
OMS.start();
