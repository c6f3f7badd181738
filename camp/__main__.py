from camp.cli import main

raise SystemExit(main())
