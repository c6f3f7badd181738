from camp.course.cli import main

raise SystemExit(main())
