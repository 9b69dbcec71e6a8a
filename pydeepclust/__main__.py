from pydeepclust.cli import main

raise SystemExit(main())
